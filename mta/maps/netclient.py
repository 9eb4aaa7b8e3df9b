"""A small bounded client for line protocols (memcached's text protocol, Redis's RESP).

    client = LineClient(parse_endpoint("inet:127.0.0.1:11211", 11211, where), timeout=2.0)
    client.send(b"get key\\r\\n"); client.read_line(); client.read_exact(n)

Endpoints are written as in Postfix: `inet:host:port`, `host:port`, `host`, `[ipv6]:port` or
`unix:/path`. Every connect, send and receive has the timeout; a line longer than its bound
or a payload longer than the caller's bound is a protocol error, never a larger buffer.
Errors are OSError (ProtocolError is one); NetworkTable turns them into TableUnavailable.

NetworkTable is what redis: and memcache: share: the key folded and expanded by key_format,
the answer cache, one kept connection, and one reconnect when a kept connection fails (the
server may have restarted) before the table is unavailable for that lookup.
"""

from __future__ import annotations

import socket
from abc import abstractmethod

from mta.maps.table import (
    MAX_REPLY_LINE_BYTES,
    LookupTable,
    ResultCache,
    TableFormatError,
    first_line,
    fold_key,
)
from mta.maps.tablecf import expand_key

RECEIVE_BYTES = 65536
Endpoint = tuple[str, int] | str  # (host, port) or a UNIX socket path


class ProtocolError(OSError):
    """The server said something we do not accept: too long, malformed, or an error reply."""


def parse_endpoint(text: str, default_port: int, where: str) -> Endpoint:
    if text.startswith("unix:"):
        return text[5:]
    address = text.removeprefix("inet:")
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":") if bracket else ""
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    else:
        host, port_text = address, ""
    # ASCII digits only, and few: int() refuses "²" and 4300+ digits with a ValueError
    if not host or (port_text and not (port_text.isascii() and port_text.isdigit())):
        raise TableFormatError(f"{where}: bad server address {text!r}")
    if len(port_text) > 5:
        raise TableFormatError(f"{where}: bad port in {text!r}")
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise TableFormatError(f"{where}: bad port in {text!r}")
    return host, port


def describe(endpoint: Endpoint) -> str:
    return endpoint if isinstance(endpoint, str) else f"{endpoint[0]}:{endpoint[1]}"


class LineClient:
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        if isinstance(endpoint, str):
            self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.socket.settimeout(timeout)
            try:
                self.socket.connect(endpoint)
            except OSError:
                self.socket.close()
                raise
        else:
            self.socket = socket.create_connection(endpoint, timeout=timeout)
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def _fill(self) -> None:
        chunk = self.socket.recv(RECEIVE_BYTES)
        if not chunk:
            raise ProtocolError("connection closed by the server")
        self.buffer += chunk

    def read_line(self, limit: int = MAX_REPLY_LINE_BYTES) -> bytes:
        """One line without its CRLF."""
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > limit:
                raise ProtocolError(f"reply line longer than {limit} bytes")
            self._fill()
        if end > limit:
            raise ProtocolError(f"reply line longer than {limit} bytes")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def close(self) -> None:
        self.socket.close()


class NetworkTable(LookupTable):
    """A table on a server: subclasses set endpoint, timeout, key_format, where and cache."""

    endpoint: Endpoint
    timeout: float
    key_format: str
    where: str  # names the key_format setting in errors
    cache: ResultCache

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        self.client: LineClient | None = None

    @abstractmethod
    def server_key(self, key: str) -> bytes | None:
        """key_format applied to the folded key; None when the server cannot hold such a key."""

    @abstractmethod
    def request(self, client: LineClient, key: bytes) -> bytes | None:
        """Ask the server for key's value: None when it has none."""

    def connect(self) -> LineClient:
        return LineClient(self.endpoint, self.timeout)

    def expand(self, key: str) -> str | None:
        return expand_key(self.key_format, key, self.where)

    def _ask(self, key: bytes) -> bytes | None:
        if self.client is None:
            self.client = self.connect()
        return self.request(self.client, key)

    def lookup(self, key: str) -> str | None:
        key = fold_key(key)
        cached, answer = self.cache.get(key)
        if cached:
            return answer
        server_key = self.server_key(key)
        if server_key is None:
            return None
        try:
            try:
                value = self._ask(server_key)
            except OSError:
                if self.client is None:
                    raise  # the connect failed: there is nothing stale to retry
                self.close()
                value = self._ask(server_key)
        except OSError as error:
            self.close()
            raise self.unavailable(f"{describe(self.endpoint)}: {first_line(error)}") from error
        answer = None if value is None else value.decode("utf-8", "replace")
        self.cache.put(key, answer)
        return answer

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
