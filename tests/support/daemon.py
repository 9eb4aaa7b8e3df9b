"""Start a test server in the foreground, wait until it answers, stop it by its PID.

    process = start_daemon([binary, "-d", "-c", conf], directory, "nsd", ready=answering)
    ...
    stop_daemon(process)

Output goes to DIRECTORY/NAME.out, quoted in the failure when the server exits or never
answers (ready: accepting() for a TCP server, dns_reply() for a DNS one). A missing binary
fails the test (with the Debian package to install); it never skips.
"""

from __future__ import annotations

import glob
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05
OUTPUT_TAIL = 2000  # characters of a failed server's output quoted in the failure


def binary(name: str, package: str, *patterns: str) -> str:
    """The path of a server or tool from a Debian package listed in ci/apt-test-packages.txt:
    on PATH, in /usr/sbin, or else the first match of the glob patterns (for packages that
    install it in a versioned folder, as PostgreSQL does)."""
    found = (
        shutil.which(name)
        or shutil.which(f"/usr/sbin/{name}")
        or next((path for pattern in patterns for path in sorted(glob.glob(pattern))), None)
    )
    if found is None:
        pytest.fail(f"{name} is not installed (package {package}, ci/apt-test-packages.txt)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of host that nothing listens on (the kernel's pick), for a server to come."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def accepting(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port (a readiness check)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def dns_reply(port: int, name: str, rdtype: str = "SOA") -> dns.message.Message | None:
    """One UDP query to a DNS server on 127.0.0.1:port (a readiness check): its reply, or
    None when nothing answered in time."""
    query = dns.message.make_query(name, rdtype)
    try:
        return dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return None


def run_tool(command: Sequence[str], directory: Path) -> str:
    """Run a helper tool to completion in directory; its stdout, or the test fails."""
    result = subprocess.run(
        list(command), cwd=directory, capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        pytest.fail(f"{command[0]} failed ({result.returncode}): {result.stderr[-OUTPUT_TAIL:]}")
    return result.stdout


def start_daemon(
    command: Sequence[str],
    directory: Path,
    name: str,
    ready: Callable[[], bool],
    timeout: float = START_TIMEOUT_SECONDS,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start command (which must stay in the foreground), as user if given, and wait until
    ready() is true."""
    log = directory / f"{name}.out"
    with log.open("wb") as output:
        if user is not None:
            shutil.chown(log, user)
        process = subprocess.Popen(
            list(command), stdout=output, stderr=subprocess.STDOUT, cwd=directory, user=user
        )
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            stop_daemon(process)
            pytest.fail(f"{name} did not become ready in {timeout}s: {_tail(log)}")
        time.sleep(POLL_SECONDS)
    return process


def stop_daemon(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the PID we started, SIGKILL if it does not go in time; reaps it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-OUTPUT_TAIL:]
    except OSError as error:
        return f"(no output: {error})"
