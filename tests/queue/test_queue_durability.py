"""Crash safety and concurrent writers, with real processes.

A child enqueues through the committer and prints each queue id only after the committer has
acknowledged it; SIGKILL at random moments must never lose an acknowledged message, leave a
half-written one, or keep the queue from opening. Several children writing at once must
neither lose nor duplicate mail (LMDB serialises their write transactions).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mta.queue import MailQueue, Message, QueueName, QueueSettings

CRASH_TEST_SECONDS = 15.0
MAX_KILLS = 40


def check_queue(queue_dir: Path, acknowledged: dict[int, str], make: Callable[..., Message]) -> int:
    """Open the queue as a restarting qmgr would; every acknowledged message must be intact."""
    with MailQueue(QueueSettings(queue_dir)) as queue:
        queue.clear_stale_readers()
        queue.recover_active()
        for serial, queue_id in acknowledged.items():
            expected = make(serial)
            queued = queue.get(queue_id)
            assert queued.sender == expected.sender
            assert tuple(state.recipient for state in queued.recipients) == expected.recipients
            assert queue.content(queue_id) == expected.content
        everything = list(queue.scan())
        assert queue.count(QueueName.CORRUPT) == 0
        for queued in everything:
            assert queue.content(queued.queue_id)
            assert len(queued.recipients) == 2
        return len(everything)


def read_acknowledgements(output: bytes) -> dict[int, str]:
    """The "serial queue_id" lines a child printed; a line cut off by the kill is ignored."""
    acknowledged = {}
    for line in output.split(b"\n")[:-1]:
        serial, queue_id = line.decode().split()
        acknowledged[int(serial)] = queue_id
    return acknowledged


@pytest.mark.slow
def test_sigkill_never_loses_acknowledged_mail(
    queue_dir: Path,
    make: Callable[..., Message],
    child: Callable[..., list[str]],
    child_environment: dict[str, str],
) -> None:
    rng = random.Random(os.getpid())
    acknowledged: dict[int, str] = {}
    deadline = time.monotonic() + CRASH_TEST_SECONDS
    kills = 0
    while time.monotonic() < deadline and kills < MAX_KILLS:
        first = kills * 1_000_000
        process = subprocess.Popen(
            child(str(queue_dir), str(first), "0", "8"),
            stdout=subprocess.PIPE,
            env=child_environment,
        )
        assert process.stdout is not None
        process.stdout.readline()  # the child is committing: from here on, kill it anywhere
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(process.pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        kills += 1
        this_run = read_acknowledgements(output)
        acknowledged.update(this_run)
        assert check_queue(queue_dir, acknowledged, make) >= len(acknowledged)
    assert kills >= 10
    assert len(set(acknowledged.values())) == len(acknowledged)


@pytest.mark.slow
def test_concurrent_processes_lose_and_duplicate_nothing(
    queue_dir: Path,
    make: Callable[..., Message],
    child: Callable[..., list[str]],
    child_environment: dict[str, str],
) -> None:
    writers, per_writer = 4, 250
    processes = [
        subprocess.Popen(
            child(str(queue_dir), str(n * 1_000_000), str(per_writer), "4"),
            stdout=subprocess.PIPE,
            env=child_environment,
        )
        for n in range(writers)
    ]
    acknowledged: dict[int, str] = {}
    for process in processes:
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        acknowledged.update(read_acknowledgements(output))
    assert len(acknowledged) == writers * per_writer
    assert len(set(acknowledged.values())) == writers * per_writer
    assert check_queue(queue_dir, acknowledged, make) == writers * per_writer
