"""Processes for the qmgr and agent tests: `python -m mta.qmgr` and `python -m mta.agents.*`
on a queue under a short /tmp path (AF_UNIX paths are short), with their logs in files.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from support.instance import environment, wait_for

from mta.queue import MailQueue, Message, QueueName, QueueSettings, Recipient
from mta.util.trigger import TriggerSender, trigger_path


class Instance:
    """A configuration directory, its queue, and the processes started on it."""

    def __init__(self, directory: Path, main_cf: str = "") -> None:
        self.directory = directory
        self.queue_directory = directory / "q"
        self.data_directory = directory / "data"
        (directory / "main.cf").write_text(
            f"queue_directory = {self.queue_directory}\n"
            f"data_directory = {self.data_directory}\n"
            "myhostname = mx.example.test\n"
            f"{main_cf}"
        )
        (self.queue_directory / "private").mkdir(parents=True)
        self.queue = MailQueue(QueueSettings(self.queue_directory))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, module: str, *args: str) -> subprocess.Popen[bytes]:
        log_path = self.directory / f"{name}.log"
        self.logs[name] = log_path
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "-c", str(self.directory), *args],
                env=environment(),
                stderr=log_file,
            )
        self.processes[name] = process
        return process

    def start_agent(
        self, agent: str, service: str | None = None, *args: str, module: str = ""
    ) -> None:
        """Agent mta.agents.AGENT (or the module given) listening as service (default: agent)."""
        service = service or agent
        socket_path = self.queue_directory / "private" / service
        socket_path.unlink(missing_ok=True)
        self.start(
            service,
            module or f"mta.agents.{agent}",
            "--service",
            service,
            "--listen",
            str(socket_path),
            "--max-idle",
            "0",
            "--max-use",
            "0",
            *args,
        )
        wait_for(socket_path.exists, f"{service} socket")

    def start_qmgr(self) -> None:
        self.start("qmgr", "mta.qmgr")
        wait_for(trigger_path(self.queue_directory).exists, "qmgr trigger socket")

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        process.send_signal(signum)
        process.wait(timeout=20)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        self.queue.close()

    def enqueue(
        self,
        count: int = 1,
        sender: str = "alice@client.test",
        recipients: tuple[str, ...] = ("bob@remote.test",),
        extras: Mapping[str, str] | None = None,
    ) -> list[str]:
        content = b"Subject: test\r\nFrom: alice@client.test\r\n\r\nhello\r\n"
        messages = [
            Message(sender, tuple(Recipient(r) for r in recipients), content, extras=extras or {})
            for _ in range(count)
        ]
        ids = self.queue.enqueue(messages)
        self.trigger()
        return ids

    def trigger(self, request: bytes = b"I") -> None:
        sender = TriggerSender(trigger_path(self.queue_directory))
        sender.send(request)
        sender.close()

    def queued(self) -> int:
        return sum(self.queue.count(name) for name in QueueName)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def all_logs(self) -> str:
        return "".join(self.log(name) for name in self.logs)
