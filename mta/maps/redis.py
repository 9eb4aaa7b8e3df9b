"""redis: tables: one GET per lookup on a Redis server, with a small bounded RESP client.

    redis:/etc/mta/redis-aliases.cf
        host = 127.0.0.1
        port = 6379
        db = 0
        key_format = alias:%s

Postfix has no redis table of its own; the parameters follow its other network tables.
host (an address, or unix:/path for a socket; default 127.0.0.1), port (6379), db (SELECTed
after connecting when not 0), password (sent with AUTH when set), key_format (default %s; %u
and %d as in mta.maps.tablecf, so `alias:%s` is a key prefix), timeout (default 2s for the
connect and each reply), cache_ttl (default 10s; 0: none).

A lookup is `GET key`: a string answers, nil is not found, an error reply or a value that is
not a string makes the table unavailable for that lookup. One connection per table, kept; a
failure on a kept connection reconnects once (mta.maps.netclient.NetworkTable). Keys are
folded to lower case. Replies are bounded: MAX_REPLY_LINE_BYTES per line, MAX_REPLY_BYTES per
value.
"""

from __future__ import annotations

from mta.maps.netclient import LineClient, NetworkTable, ProtocolError, parse_endpoint
from mta.maps.table import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_REPLY_BYTES,
    ResultCache,
    key_fits,
)
from mta.maps.tablecf import TableConfig

REDIS_PARAMETERS = ("host", "port", "db", "password", "key_format", "timeout", "cache_ttl")
DEFAULT_PORT = 6379


def command(*arguments: bytes) -> bytes:
    """A RESP array of bulk strings: what redis-cli sends."""
    parts = [b"*%d\r\n" % len(arguments)]
    parts.extend(b"$%d\r\n%s\r\n" % (len(argument), argument) for argument in arguments)
    return b"".join(parts)


def read_reply(client: LineClient) -> bytes | None:
    """A simple string or bulk string reply; None for nil; ProtocolError for anything else."""
    line = client.read_line()
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"$":
        if not rest.removeprefix(b"-").isdigit():  # one sign at most: int() takes nothing else
            raise ProtocolError(f"bad bulk length {rest[:20]!r}")
        size = int(rest)
        if size < 0:
            return None
        if size > MAX_REPLY_BYTES:
            raise ProtocolError(f"value longer than {MAX_REPLY_BYTES} bytes")
        return client.read_exact(size + 2)[:-2]
    if kind == b"-":
        raise ProtocolError(f"server error: {rest.decode('utf-8', 'replace')}")
    raise ProtocolError(f"unexpected reply {line[:40]!r}")


class RedisTable(NetworkTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        config = TableConfig(spec, name, REDIS_PARAMETERS)
        host = config.text("host", "127.0.0.1")
        port = config.number("port", DEFAULT_PORT, minimum=1)
        where = config.where("host")
        self.endpoint = parse_endpoint(
            host if host.startswith("unix:") else f"[{host}]:{port}", port, where
        )
        self.db = config.number("db", 0)
        self.password = config.text("password")
        self.key_format = config.text("key_format", "%s")
        self.where = config.where("key_format")
        self.expand("user@example.com")  # a bad key_format is refused at open, not per lookup
        self.timeout = config.seconds("timeout", DEFAULT_TIMEOUT_SECONDS)
        self.cache = ResultCache(config.seconds("cache_ttl", DEFAULT_CACHE_SECONDS))

    def connect(self) -> LineClient:
        client = super().connect()
        try:
            if self.password:
                client.send(command(b"AUTH", self.password.encode()))
                read_reply(client)
            if self.db:
                client.send(command(b"SELECT", b"%d" % self.db))
                read_reply(client)
        except OSError:
            client.close()
            raise
        return client

    def server_key(self, key: str) -> bytes | None:
        expanded = self.expand(key)
        return expanded.encode() if expanded is not None and key_fits(expanded) else None

    def request(self, client: LineClient, key: bytes) -> bytes | None:
        client.send(command(b"GET", key))
        return read_reply(client)
