"""memcache: tables, configured as in Postfix's memcache_table(5); read-only `get` lookups.

    memcache:/etc/mta/memcache-aliases.cf
        memcache = inet:127.0.0.1:11211
        key_format = alias:%s

Parameters: memcache (the server: inet:host:port, host:port or unix:/path; default
inet:127.0.0.1:11211), key_format (default %s; %u, %d as in mta.maps.tablecf), timeout
(default 2s), data_size_limit (default 10240, as Postfix: a longer value makes the table
unavailable for that lookup), line_size_limit (default 1024), cache_ttl (default 10s; 0:
none). Postfix's backup, flags, ttl, max_try and retry_pause are about updates or a backup
table, which this read-only table does not have; they are refused rather than ignored.

The client speaks memcached's text protocol: `get KEY` answers `VALUE KEY FLAGS BYTES` and
the data then `END`, or just `END`. A key memcached cannot take (longer than 250 bytes, or
with white space or control characters) is not found, as in Postfix. One connection per
table, kept; a failure on a kept connection reconnects once (NetworkTable). Keys are folded to
lower case.
"""

from __future__ import annotations

from mta.maps.netclient import LineClient, NetworkTable, ProtocolError, parse_endpoint
from mta.maps.table import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_REPLY_BYTES,
    MAX_REPLY_LINE_BYTES,
    ResultCache,
)
from mta.maps.tablecf import TableConfig

MEMCACHE_PARAMETERS = (
    "memcache",
    "key_format",
    "timeout",
    "data_size_limit",
    "line_size_limit",
    "cache_ttl",
)
DEFAULT_PORT = 11211
MAX_MEMCACHE_KEY_BYTES = 250  # memcached's own limit
DEFAULT_DATA_SIZE_LIMIT = 10240
MIN_LINE_SIZE_LIMIT = 64


class MemcacheTable(NetworkTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        config = TableConfig(spec, name, MEMCACHE_PARAMETERS)
        self.endpoint = parse_endpoint(
            config.text("memcache", "inet:127.0.0.1:11211"), DEFAULT_PORT, config.where("memcache")
        )
        self.key_format = config.text("key_format", "%s")
        self.where = config.where("key_format")
        self.expand("user@example.com")  # a bad key_format is refused at open, not per lookup
        self.timeout = config.seconds("timeout", DEFAULT_TIMEOUT_SECONDS)
        self.data_size_limit = min(
            MAX_REPLY_BYTES, config.number("data_size_limit", DEFAULT_DATA_SIZE_LIMIT)
        )
        self.line_size_limit = min(
            MAX_REPLY_LINE_BYTES,
            config.number("line_size_limit", MAX_REPLY_LINE_BYTES, MIN_LINE_SIZE_LIMIT),
        )
        self.cache = ResultCache(config.seconds("cache_ttl", DEFAULT_CACHE_SECONDS))

    def server_key(self, key: str) -> bytes | None:
        expanded = self.expand(key)
        if expanded is None:
            return None
        data = expanded.encode()
        if not 0 < len(data) <= MAX_MEMCACHE_KEY_BYTES or any(b <= 32 or b == 127 for b in data):
            return None
        return data

    def request(self, client: LineClient, key: bytes) -> bytes | None:
        client.send(b"get " + key + b"\r\n")
        line = client.read_line(self.line_size_limit)
        if line == b"END":
            return None
        words = line.split()
        if len(words) != 4 or words[0] != b"VALUE" or words[1] != key or not words[3].isdigit():
            raise ProtocolError(f"unexpected reply {line[:60]!r}")
        size = int(words[3])
        if size > self.data_size_limit:
            raise ProtocolError(f"value longer than data_size_limit ({self.data_size_limit})")
        data = client.read_exact(size + 2)[:-2]
        if client.read_line(self.line_size_limit) != b"END":
            raise ProtocolError("no END after the value")
        return data
