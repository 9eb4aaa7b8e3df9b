"""A real dnsmasq on 127.0.0.1 serving the DNS test zones (tests/dns_resolver).

dnsmasq (Debian package dnsmasq-base, listed in ci/apt-test-packages.txt) runs in the
foreground on a free loopback port, answers only from the records below (`--local=/test/`
makes every other name under .test NXDOMAIN), and is stopped by the PID the fixture started.
A missing dnsmasq fails the tests; it never skips them.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass

import dns.exception
import dns.resolver

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
LOCAL_TTL = 300  # the TTL dnsmasq gives its local records

RECORDS = [
    # mx.test: two preferences, two hosts of equal preference 20
    "--mx-host=mx.test,one.mx.test,10",
    "--mx-host=mx.test,two.mx.test,20",
    "--mx-host=mx.test,three.mx.test,20",
    "--host-record=one.mx.test,127.0.0.11,::11",
    "--host-record=two.mx.test,127.0.0.12",
    "--host-record=three.mx.test,127.0.0.13,::13",
    # plain.test: no MX, A and AAAA (the implicit MX)
    "--host-record=plain.test,127.0.0.20,::20",
    # null.test: RFC 7505 null MX, "0 ." (preference 0, the root name)
    "--dns-rr=null.test,15,000000",
    # ghost.test: an MX host that does not exist
    "--mx-host=ghost.test,nowhere.test,10",
]


@dataclass
class Dnsmasq:
    process: subprocess.Popen[bytes]
    port: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answering(port: int) -> bool:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 0.5
    try:
        resolver.resolve("plain.test", "A")
    except dns.exception.DNSException:
        return False
    return True
