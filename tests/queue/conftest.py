"""Fixtures and helpers of the queue tests: both codecs, a queue, messages, child processes.

The codec fixture runs each test against the pure-Python twin (id "py") and the compiled
module (id "c"). With MTA_NO_EXTENSIONS=1 only the twin runs; otherwise the compiled module
must import, and a failure to import it is an error, never a skip.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from mta.queue import MailQueue, Message, Notify, QueueSettings, Recipient

CODEC_IDS = ["py"] if os.environ.get("MTA_NO_EXTENSIONS") == "1" else ["py", "c"]
CODEC_MODULES = {"py": "hotpath._queue_py", "c": "hotpath._queue"}


@pytest.fixture(params=CODEC_IDS, scope="module")
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(CODEC_MODULES[request.param])


@pytest.fixture
def queue_dir(tmp_path: Path) -> Path:
    return tmp_path / "queue"


@pytest.fixture
def mail_queue(queue_dir: Path) -> Iterator[MailQueue]:
    queue = MailQueue(QueueSettings(queue_dir, map_size=1 << 20))
    yield queue
    queue.close()


REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD_SCRIPT = Path(__file__).with_name("queue_child.py")


def make_message(serial: int, *, size: int = 1024, recipients: int = 2) -> Message:
    """A message whose content is derived from serial, so a checker can rebuild it exactly."""
    header = f"Received: from client{serial}\r\nSubject: test {serial}\r\n\r\n".encode()
    filler = hashlib.sha256(str(serial).encode()).hexdigest().encode() * (size // 64 + 1)
    body = b"\r\n".join(filler[i : i + 62] for i in range(0, size, 62))
    return Message(
        sender=f"sender{serial}@example.org",
        recipients=tuple(
            Recipient(f"rcpt{serial}.{n}@example.net", notify=Notify.FAILURE)
            for n in range(recipients)
        ),
        content=(header + body)[:size],
        arrival_time=1_700_000_000.0 + serial,
        extras={"client_address": "192.0.2.1", "helo_name": f"client{serial}"},
    )


def child_env() -> dict[str, str]:
    """The environment for a child python that imports mta from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def child_command(*args: str) -> list[str]:
    return [sys.executable, str(CHILD_SCRIPT), *args]


MakeMessage = Callable[..., Message]


@pytest.fixture(scope="session")
def make() -> MakeMessage:
    """make_message, for tests (which cannot import conftest under --import-mode=importlib)."""
    return make_message


@pytest.fixture(scope="session")
def child() -> Callable[..., list[str]]:
    """child_command, for the tests that run queue_child.py (use with child_env())."""
    return child_command


@pytest.fixture(scope="session")
def child_environment() -> dict[str, str]:
    return child_env()
