"""A real dnsmasq on 127.0.0.1 serving the DNS test zones (tests/dns_resolver).

dnsmasq (Debian package dnsmasq-base, listed in ci/apt-test-packages.txt) runs in the
foreground on a free loopback port, answers only from the records below (`--local=/test/`
makes every other name under .test NXDOMAIN), and is stopped by the PID serving() started
(tests/support/daemon.py). A missing dnsmasq fails the tests; it never skips them. serving()
also runs one with other records (tests/smtp).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.rcode

from support.daemon import binary, dns_reply, free_port, start_daemon, stop_daemon

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


@contextlib.contextmanager
def serving(records: Sequence[str], domain: str = "test") -> Iterator[Dnsmasq]:
    """A dnsmasq answering `records` (dnsmasq options) on a free loopback port, authoritative
    for `domain` (every other name under it is NXDOMAIN), stopped by its PID on exit."""
    directory = Path(tempfile.mkdtemp(prefix="mta-dns-"))
    port = free_port()
    command = [binary("dnsmasq", "dnsmasq-base"), "-k", f"--port={port}"]
    command += ["--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts"]
    command += ["--pid-file=", f"--local=/{domain}/", f"--local-ttl={LOCAL_TTL}"]
    command += [f"--log-facility={directory / 'dnsmasq.log'}", *records]
    try:
        process = start_daemon(command, directory, "dnsmasq", lambda: _answering(port, domain))
        try:
            yield Dnsmasq(process, port)
        finally:
            stop_daemon(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _answering(port: int, domain: str) -> bool:
    """Any answer (NXDOMAIN included) from the server means it is up."""
    reply = dns_reply(port, f"probe.{domain}", "A")
    return reply is not None and reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
