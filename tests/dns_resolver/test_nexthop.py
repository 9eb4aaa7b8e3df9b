"""Postfix next-hop forms: domain, host:port, [host], [host]:port, [address]."""

from __future__ import annotations

import pytest

from mta.dns.nexthop import NextHop, parse_nexthop


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Example.COM.", NextHop("example.com", 25, mx_lookup=True)),
        ("example.com:2525", NextHop("example.com", 2525, mx_lookup=True)),
        ("[mail.example.com]", NextHop("mail.example.com", 25, mx_lookup=False)),
        ("[mail.example.com]:submission", NextHop("mail.example.com", 587, mx_lookup=False)),
        ("[192.0.2.1]:587", NextHop("192.0.2.1", 587, mx_lookup=False)),
        ("[ipv6:2001:DB8::1]:26", NextHop("2001:db8::1", 26, mx_lookup=False)),
        ("[2001:db8::1]", NextHop("2001:db8::1", 25, mx_lookup=False)),
        ("192.0.2.1", NextHop("192.0.2.1", 25, mx_lookup=False)),
    ],
)
def test_forms(text: str, expected: NextHop) -> None:
    assert parse_nexthop(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "[host", "[host]x", "host:0", "host:70000", "host:nosuchservice", "a b"]
)
def test_bad_next_hops(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nexthop(text)


@pytest.mark.parametrize("port", ["\u0661\u0662", "\u00b2", "smtp\0"])
def test_a_port_of_other_digits_is_a_bad_port(port: str) -> None:
    with pytest.raises(ValueError, match="bad port"):
        parse_nexthop(f"example.com:{port}")


def test_bounded_input() -> None:
    with pytest.raises(ValueError):
        parse_nexthop("a" * 2000)
