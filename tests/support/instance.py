"""A master run as a real process (`python -m mta -c DIR start ...`) on 127.0.0.1 port 0.

Directories are short paths under /tmp so that UNIX socket paths fit AF_UNIX's limit. Every
process a test starts is stopped by its PID afterwards. Used by tests/master, and through
running_instance by the end-to-end tests (tests/e2e, bounce, smtp, dane).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mta.queue import MailQueue, QueueName, QueueSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
SMTPD_ONLY = "127.0.0.1:0 inet n - n - - smtpd\n"
FULL_MASTER_CF = """\
127.0.0.1:0 inet n - n - - smtpd
qmgr      unix  n - n 300 1 qmgr
discard   unix  - - n -   - discard
error     unix  - - n -   - error
local     unix  - n n -   - local
"""
"""smtpd, qmgr and the discard, error and local agents: mail stays on this machine."""
FAST_RETRIES = (
    "queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n"
    "delivery_agent_crash_retry_time = 1s\ntransport_retry_time = 1s\n"
)
"""main.cf lines that make deferred mail and failed agents come back within seconds."""
WAIT_SECONDS = 20.0


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("MTA_CONFIG_DIR", None)
    return env


def mta(directory: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mta", "-c", str(directory), *args],
        env=environment(),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate: Any, what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


class Instance:
    """One configuration directory and the master started on it."""

    def __init__(self, directory: Path, master_cf: str, main_cf: str) -> None:
        self.directory = directory
        self.data = directory / "base" / "data"
        self.log = directory / "maillog"
        self.master: subprocess.Popen[bytes] | None = None
        self.seen_pids: set[int] = set()
        (directory / "master.cf").write_text(master_cf)
        self.write_main_cf(main_cf)

    def write_main_cf(self, extra: str) -> None:
        owner = "mail_owner = root\n" if os.geteuid() == 0 else ""
        (self.directory / "main.cf").write_text(
            f"base_directory = {self.directory}/base\nmaillog_file = {self.log}\n{owner}{extra}"
        )

    def start_foreground(self) -> subprocess.Popen[bytes]:
        self.master = subprocess.Popen(
            [sys.executable, "-m", "mta", "-c", str(self.directory), "start", "--foreground"],
            env=environment(),
            stderr=subprocess.PIPE,
        )
        self.wait_running()
        return self.master

    def status(self) -> dict[str, Any] | None:
        """master.status as the master last wrote it; every PID in it is remembered."""
        try:
            status = json.loads((self.data / "master.status").read_text())
        except (FileNotFoundError, ValueError):
            return None
        assert isinstance(status, dict)
        self.seen_pids.update(self.all_pids(status))
        return status

    def pids(self, command: str = "smtpd", status: dict[str, Any] | None = None) -> list[int]:
        status = status or self.status() or {"services": []}
        return [
            process["pid"]
            for service in status["services"]
            if service["command"] == command
            for process in service["processes"]
        ]

    def wait_running(self, generation: int = 1) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.master is not None and self.master.poll() is not None:
                assert self.master.stderr is not None
                pytest.fail(f"master exited: {self.master.stderr.read().decode()}")
            status = self.status()
            if status is None or status["generation"] != generation or status["retiring"]:
                return None
            if not all(service["processes"] for service in status["services"]):
                return None
            log = self.log.read_text() if self.log.exists() else ""
            listening = [f"smtpd[{pid}]: listening on" in log for pid in self.pids(status=status)]
            return status if all(listening) else None

        status: dict[str, Any] = wait_for(ready, f"master generation {generation}")
        return status

    @staticmethod
    def all_pids(status: dict[str, Any]) -> list[int]:
        return [p["pid"] for service in status["services"] for p in service["processes"]]

    @property
    def port(self) -> int:
        status = self.status()
        assert status is not None
        listen = next(s["listen"][0] for s in status["services"] if s["command"] == "smtpd")
        return int(listen.rpartition(":")[2])

    def queued(self) -> int:
        """Messages in any queue (incoming, active, deferred, hold, corrupt)."""
        settings = QueueSettings(self.directory / "base" / "queue")
        with MailQueue(settings, create=False) as queue:
            return sum(queue.count(name) for name in QueueName)

    def send(self, count: int = 1, port: int | None = None) -> None:
        for number in range(count):
            with smtplib.SMTP("127.0.0.1", port or self.port, timeout=10) as client:
                client.sendmail(
                    "sender@example.org",
                    ["root@localhost"],
                    f"Subject: message {number}\r\n\r\nbody\r\n".encode(),
                )

    def stop(self) -> list[int]:
        """SIGTERM the master, wait for it; SIGKILL whatever it left behind and return the
        PIDs of those leftovers (empty when the master stopped every child)."""
        if self.master is not None and self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            try:
                self.master.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()
        pid_file = self.data / "master.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)  # a daemon a test left running
        leftovers = sorted(pid for pid in self.seen_pids if alive(pid))
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.master is not None and self.master.stderr is not None:
            self.master.stderr.close()
        return leftovers


@contextlib.contextmanager
def running_instance(prefix: str, master_cf: str, main_cf: str) -> Iterator[Instance]:
    """An instance in a new short directory under /tmp, started in the foreground; at the end
    it is stopped and its directory removed, and the master must have exited 0 leaving no
    child behind."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    instance = Instance(directory, master_cf, main_cf)
    try:
        instance.start_foreground()
        yield instance
    finally:
        leftovers = instance.stop()
        shutil.rmtree(directory, ignore_errors=True)
    assert instance.master is not None and instance.master.returncode == 0
    assert leftovers == [], f"children left after the master stopped: {leftovers}"
