"""kill -9 of each kind of child under load: the master restarts it, and every message that
got a 250 with a queue id is delivered; only messages in flight at the kill may be delivered
twice."""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections import Counter

import pytest
from support.instance import Instance, alive, wait_for

from .mail import (
    LogLine,
    log_lines,
    log_size,
    maildir_files,
    sent_counts,
    submit_on,
    unique_message,
    wait_until_delivered,
)

CLIENTS = 4
MESSAGES_PER_SESSION = 1000  # sessions stay open: an smtpd kill always cuts some
BEFORE_KILL = 60
AFTER_RESTART = 60


class Load:
    """Client threads sending mail in sessions of a few messages; a message counts as accepted
    only with a 250 and its queue id. Session failures (a killed smtpd) are counted apart."""

    def __init__(self, port: int, recipient: str) -> None:
        self.port = port
        self.recipient = recipient
        self.acked: list[str] = []
        self.session_failures = 0
        self.refusals: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_acked(self, count: int) -> None:
        wait_for(lambda: len(self.acked) >= count, f"{count} messages accepted", timeout=30)

    def _client(self, number: int) -> None:
        sequence = 0
        while not self._stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                    for _ in range(MESSAGES_PER_SESSION):
                        if self._stop.is_set():
                            break
                        sequence += 1
                        message = unique_message(f"load {number}.{sequence}")
                        try:
                            queue_id = submit_on(
                                client, f"load{number}@x.example", [self.recipient], message
                            )
                        except AssertionError as refusal:
                            with self._lock:
                                self.refusals.append(str(refusal))
                            client.rset()
                            continue
                        with self._lock:
                            self.acked.append(queue_id)
            except (smtplib.SMTPException, OSError):
                with self._lock:
                    self.session_failures += 1
                time.sleep(0.05)


def in_flight(lines: list[LogLine]) -> set[str]:
    """Queue ids that qmgr had moved to active and not yet removed: work a kill may redo."""
    active: set[str] = set()
    for line in lines:
        if line.queue_id is None or line.service != "qmgr":
            continue
        if line.rest.endswith("(queue active)"):
            active.add(line.queue_id)
        elif line.rest == "removed":
            active.discard(line.queue_id)
    return active


def busiest(lines: list[LogLine], pids: list[int]) -> int:
    """The process among pids with the most SMTP sessions open (connects minus disconnects);
    for services that log no sessions, the first."""
    open_sessions = Counter[int]()
    for line in lines:
        if line.text.startswith("connect from "):
            open_sessions[line.pid] += 1
        elif line.text.startswith("disconnect from "):
            open_sessions[line.pid] -= 1
    return max(pids, key=lambda pid: open_sessions[pid])


def kill_under_load(instance: Instance, command: str, recipient: str) -> tuple[Load, set[str]]:
    """Kill -9 one `command` child while Load runs; wait for its replacement and for more mail
    to be accepted after it. Returns the load and the ids in flight at the kill."""
    offset = log_size(instance)
    with Load(instance.port, recipient) as load:
        load.wait_acked(BEFORE_KILL)
        victims = instance.pids(command)
        victim = busiest(log_lines(instance, offset), victims)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), f"{command}[{victim}] to die")
        flying = in_flight(log_lines(instance, offset))

        def replaced() -> list[int] | None:
            pids = instance.pids(command)
            return pids if victim not in pids and len(pids) == len(victims) else None

        new_pids: list[int] = wait_for(replaced, f"a new {command}")
        assert all(alive(pid) for pid in new_pids)
        acked_at_restart = len(load.acked)
        load.wait_acked(acked_at_restart + AFTER_RESTART)
    assert load.refusals == [], load.refusals[:5]
    log = instance.log.read_text()
    assert f"pid {victim} killed by signal 9" in log
    return load, flying


def check_delivered(
    instance: Instance, load: Load, flying: set[str], duplicates_allowed: bool
) -> Counter[str]:
    assert len(set(load.acked)) == len(load.acked)
    lines = wait_until_delivered(instance, Counter(dict.fromkeys(load.acked, 1)), exact=False)
    counts = sent_counts(lines)
    duplicated = {queue_id for queue_id, count in counts.items() if count > 1}
    if duplicates_allowed:
        assert duplicated <= flying, f"redelivered but not in flight: {duplicated - flying}"
    else:
        assert duplicated == set()
    return counts


@pytest.mark.slow
def test_smtpd_worker_killed_loses_no_acknowledged_message(crash_mta: Instance) -> None:
    load, flying = kill_under_load(crash_mta, "smtpd", "b@y.example")
    assert load.session_failures > 0  # the sessions on the killed worker were cut
    check_delivered(crash_mta, load, flying, duplicates_allowed=False)


@pytest.mark.slow
def test_qmgr_killed_loses_nothing_and_redelivers_only_in_flight_mail(
    crash_mta: Instance,
) -> None:
    load, flying = kill_under_load(crash_mta, "qmgr", "b@y.example")
    assert load.session_failures == 0  # smtpd does not need qmgr to accept mail
    check_delivered(crash_mta, load, flying, duplicates_allowed=True)


@pytest.mark.slow
def test_discard_agent_killed_loses_nothing_and_redelivers_only_in_flight_mail(
    crash_mta: Instance,
) -> None:
    load, flying = kill_under_load(crash_mta, "discard", "b@y.example")
    assert load.session_failures == 0
    check_delivered(crash_mta, load, flying, duplicates_allowed=True)


@pytest.mark.slow
def test_local_agent_killed_loses_no_maildir_delivery(crash_mta: Instance) -> None:
    load, flying = kill_under_load(crash_mta, "local", "user@localhost")
    assert load.session_failures == 0
    check_delivered(crash_mta, load, flying, duplicates_allowed=True)
    stored = maildir_files(crash_mta, "user").values()
    copies = Counter(
        queue_id for data in stored for queue_id in load.acked if f" id {queue_id}".encode() in data
    )
    assert set(copies) == set(load.acked), "acknowledged messages missing from the Maildir"
    assert {queue_id for queue_id, n in copies.items() if n > 1} <= flying
