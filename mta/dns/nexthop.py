"""Parse a Postfix next hop: `domain`, `host:port`, `[host]`, `[host]:port`, `[address]`.

    parse_nexthop("example.com")        -> NextHop("example.com", 25, mx_lookup=True)
    parse_nexthop("[mail.example.com]") -> NextHop("mail.example.com", 25, mx_lookup=False)
    parse_nexthop("[192.0.2.1]:587")    -> NextHop("192.0.2.1", 587, mx_lookup=False)
    parse_nexthop("[ipv6:2001:db8::1]") -> NextHop("2001:db8::1", 25, mx_lookup=False)
    parse_nexthop("example.com:2525")   -> NextHop("example.com", 2525, mx_lookup=True)

As in Postfix's smtp(8), brackets mean "no MX lookup": the host's own A/AAAA records (or the
address inside) are used. A port is a number or a service name from /etc/services. The host is
lower-cased and loses a trailing dot. A bad next hop raises ValueError; the caller bounces or
defers the mail with its own wording.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

SMTP_PORT = 25
MAX_NEXTHOP_LENGTH = 1024  # a bracketed host name plus a port; far above RFC limits
MAX_HOST_NAME_LENGTH = 253


@dataclass(frozen=True, slots=True)
class NextHop:
    host: str
    port: int
    mx_lookup: bool

    @property
    def is_address(self) -> bool:
        """True when host is an IPv4 or IPv6 address: no DNS lookup at all."""
        return address_or_none(self.host) is not None


def address_or_none(text: str) -> str | None:
    """The address in canonical form when text is an IP address, else None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _port(text: str, nexthop: str) -> int:
    if text.isascii() and text.isdigit():  # int() would take "١٢" and refuse "²"
        port = int(text)
    else:
        try:
            port = socket.getservbyname(text, "tcp")
        except (OSError, ValueError):  # ValueError: not ASCII, or a NUL in the name
            raise ValueError(f"bad port in next hop {nexthop!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"bad port in next hop {nexthop!r}")
    return port


def parse_nexthop(nexthop: str, default_port: int = SMTP_PORT) -> NextHop:
    """The host, port and whether to look up MX records for a next hop as Postfix writes it."""
    text = nexthop.strip()
    if not text or len(text) > MAX_NEXTHOP_LENGTH:
        raise ValueError(f"bad next hop {nexthop[:64]!r}")
    port = default_port
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"unbalanced [ in next hop {nexthop!r}")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad next hop {nexthop!r}")
            port = _port(rest[1:], nexthop)
        if host[:5].lower() == "ipv6:":
            host = host[5:]
        mx_lookup = False
    else:
        host, colon, rest = text.rpartition(":")
        if not colon or address_or_none(text) is not None:
            host = text
        else:
            port = _port(rest, nexthop)
        mx_lookup = True
    host = host.strip().rstrip(".").lower()
    address = address_or_none(host)
    if address is not None:
        return NextHop(address, port, mx_lookup=False)
    if not host or len(host) > MAX_HOST_NAME_LENGTH or any(c.isspace() for c in host):
        raise ValueError(f"bad host in next hop {nexthop!r}")
    return NextHop(host, port, mx_lookup)
