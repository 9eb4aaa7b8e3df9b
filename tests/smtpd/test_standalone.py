"""`python -m mta.smtpd` as a process: serves, then stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mta.config.maincf import BUILTIN_DEFAULTS
from mta.queue import MailQueue, QueueSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def start(directory: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    (directory / "main.cf").write_text(f"queue_directory = {directory}/q\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "mta.smtpd", "-c", str(directory), *args],
        env=env,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stderr.readline().decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            return process, int(match.group(1))
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail("smtpd did not start")


@pytest.mark.parametrize("workers", [1, 2])
def test_standalone_serves_and_stops_cleanly_on_sigterm(short_tmp: Path, workers: int) -> None:
    process, port = start(short_tmp, "--listen", "127.0.0.1:0", "--workers", str(workers))
    try:
        for _ in range(4):
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.sendmail("a@example.org", ["root@localhost"], b"Subject: s\r\n\r\nx\r\n")
        idle = smtplib.SMTP("127.0.0.1", port)  # an idle session must not delay the stop
        idle.ehlo()
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stderr is not None
        process.stderr.close()
    # The idle session was told at once, before the worker went away.
    myhostname = BUILTIN_DEFAULTS["myhostname"].encode()
    assert idle.noop() == (421, b"4.3.2 " + myhostname + b" Service shutting down")
    idle.close()
    with MailQueue(QueueSettings(short_tmp / "q")) as queue:
        assert len(list(queue.scan())) == 4
