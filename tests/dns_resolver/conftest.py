"""The session's dnsmasq (tests/support/dnsmasq.py), started once and stopped by its PID.

This folder is not tests/dns: tests/ is on sys.path, and a `dns` package there would hide
dnspython's.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import free_port
from support.dnsmasq import (
    LOCAL_TTL,
    RECORDS,
    START_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    Dnsmasq,
    answering,
)


@pytest.fixture(scope="session")
def dnsmasq() -> Iterator[Dnsmasq]:
    binary = shutil.which("dnsmasq") or shutil.which("/usr/sbin/dnsmasq")
    if binary is None:
        pytest.fail("dnsmasq is not installed (package dnsmasq-base, ci/apt-test-packages.txt)")
    directory = Path(tempfile.mkdtemp(prefix="mta-dns-"))
    port = free_port()
    command = [binary, "-k", f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces"]
    command += ["--no-resolv", "--no-hosts", "--pid-file=", "--local=/test/"]
    command += [f"--local-ttl={LOCAL_TTL}", f"--log-facility={directory / 'dnsmasq.log'}"]
    log = directory / "output.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, *RECORDS], stdout=output, stderr=subprocess.STDOUT, cwd=directory
        )
    server = Dnsmasq(process, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not answering(port):
            if process.poll() is not None:
                pytest.fail(f"dnsmasq exited with {process.returncode}: {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"dnsmasq did not answer on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
