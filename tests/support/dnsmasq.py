"""A real dnsmasq on 127.0.0.1 serving the DNS test zones (tests/dns_resolver).

dnsmasq (Debian package dnsmasq-base, listed in ci/apt-test-packages.txt) runs in the
foreground on a free loopback port, answers only from the records below (`--local=/test/`
makes every other name under .test NXDOMAIN), and is stopped by the PID the fixture started.
A missing dnsmasq fails the tests; it never skips them. serving() runs one with other records
(tests/smtp).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver
import pytest

from support.daemon import free_port

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


@contextlib.contextmanager
def serving(records: Sequence[str], domain: str = "test") -> Iterator[Dnsmasq]:
    """A dnsmasq answering `records` (dnsmasq options) on a free loopback port, authoritative
    for `domain` (every other name under it is NXDOMAIN), stopped by its PID on exit."""
    binary = shutil.which("dnsmasq") or shutil.which("/usr/sbin/dnsmasq")
    if binary is None:
        pytest.fail("dnsmasq is not installed (package dnsmasq-base, ci/apt-test-packages.txt)")
    directory = Path(tempfile.mkdtemp(prefix="mta-dns-"))
    port = free_port()
    command = [binary, "-k", f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces"]
    command += ["--no-resolv", "--no-hosts", "--pid-file=", f"--local=/{domain}/"]
    command += [f"--local-ttl={LOCAL_TTL}", f"--log-facility={directory / 'dnsmasq.log'}"]
    log = directory / "output.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, *records], stdout=output, stderr=subprocess.STDOUT, cwd=directory
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answering(port, domain):
            if process.poll() is not None:
                pytest.fail(f"dnsmasq exited with {process.returncode}: {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"dnsmasq did not answer on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield Dnsmasq(process, port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _answering(port: int, domain: str) -> bool:
    """Any answer (NXDOMAIN included) from the server means it is up."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 0.5
    try:
        resolver.resolve(f"probe.{domain}", "A")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return True
    except dns.exception.DNSException:
        return False
    return True
