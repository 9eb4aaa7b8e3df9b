"""`mta queue ...`: listing, showing and postsuper-like changes, in-process and as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest
from click.testing import CliRunner, Result

from mta.cli.main import cli
from mta.queue import (
    MailQueue,
    Message,
    QueueName,
    QueueSettings,
    RecipientResult,
    RecipientStatus,
)
from mta.util import sysexits
from mta.util.trigger import FLUSH_DEFERRED, TriggerReceiver, trigger_path


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "conf"
    directory.mkdir()
    (directory / "main.cf").write_text(f"queue_directory = {tmp_path / 'queue'}\n")
    return directory


@pytest.fixture
def queued(config_dir: Path, make: Callable[..., Message]) -> Iterator[list[str]]:
    """Three messages: one deferred with a reason, one on hold, one incoming."""
    with MailQueue(QueueSettings(config_dir.parent / "queue")) as queue:
        ids = queue.enqueue([make(n) for n in range(3)])
        queue.move(ids[:1], QueueName.ACTIVE)
        queue.record_results(
            [
                RecipientResult(ids[0], n, RecipientStatus.DEFERRED, "4.4.1", "refused", 9e9)
                for n in range(2)
            ]
        )
        queue.move(ids[1:2], QueueName.HOLD)
    yield ids


def run(config_dir: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config_dir), "queue", *args], input=stdin)


def test_list_prints_mailq_format(config_dir: Path, queued: list[str]) -> None:
    result = run(config_dir, "list")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("-Queue ID-  --Size-- ----Arrival Time----")
    assert f"{queued[1]}!     1024 " in result.output
    assert "       (refused)\n" in result.output
    assert "rcpt2.1@example.net" in result.output
    assert result.output.endswith("-- 3 Kbytes in 3 Requests.\n")


def test_list_of_an_empty_queue(config_dir: Path) -> None:
    MailQueue(QueueSettings(config_dir.parent / "queue")).close()
    assert run(config_dir, "list").output == "Mail queue is empty\n"


def test_list_json_has_postqueue_fields(config_dir: Path, queued: list[str]) -> None:
    result = run(config_dir, "list", "--json")
    records = {r["queue_id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == set(queued)
    deferred = records[queued[0]]
    assert set(deferred) == {
        "queue_name",
        "queue_id",
        "arrival_time",
        "message_size",
        "forced_expire",
        "sender",
        "recipients",
    }
    assert deferred["queue_name"] == "deferred"
    assert deferred["arrival_time"] == 1_700_000_000
    assert deferred["recipients"][0] == {
        "address": "rcpt0.0@example.net",
        "delay_reason": "refused",
    }
    assert records[queued[1]]["queue_name"] == "hold"


def test_show_prints_envelope_headers_and_body(
    config_dir: Path, queued: list[str], make: Callable[..., Message]
) -> None:
    content = make(2).content.replace(b"\r\n", b"\n")
    head, _, body = content.partition(b"\n\n")
    everything = run(config_dir, "show", queued[2]).stdout_bytes
    assert b"sender: sender2@example.org\n" in everything
    assert head + b"\n\n" + body in everything
    headers = run(config_dir, "show", "-h", queued[2]).stdout_bytes
    assert head in headers and body not in headers and b"sender:" not in headers
    only_body = run(config_dir, "show", "--body", queued[2]).stdout_bytes
    assert body in only_body and b"Subject:" not in only_body


def test_show_of_an_unknown_id_fails_cleanly(config_dir: Path, queued: list[str]) -> None:
    result = run(config_dir, "show", "0000000000")
    assert result.exit_code == sysexits.EX_DATAERR
    assert "no such message" in result.output
    assert queued


def test_hold_release_requeue_delete(config_dir: Path, queued: list[str]) -> None:
    result = run(config_dir, "hold", queued[0], queued[2])
    assert result.exit_code == 0
    assert "postsuper: Placed on hold: 2 messages" in result.output
    assert "Released from hold: 3 messages" in run(config_dir, "release", "ALL").output
    assert "Requeued: 1 message\n" in run(config_dir, "requeue", queued[0]).output
    result = run(config_dir, "delete", "-", stdin=f"{queued[0]}\n{queued[1]}*\n")
    assert "postsuper: Deleted: 2 messages" in result.output
    with MailQueue(QueueSettings(config_dir.parent / "queue")) as queue:
        assert queue.queue_ids(QueueName.DEFERRED) == [queued[2]]
        assert queue.queue_ids(QueueName.INCOMING) == []


def test_unknown_ids_warn_and_fail_when_nothing_matched(
    config_dir: Path, queued: list[str]
) -> None:
    result = run(config_dir, "delete", "0000000000", "not-an-id")
    assert result.exit_code == sysexits.EX_DATAERR
    assert "warning: 0000000000: no such message" in result.output
    assert "warning: not-an-id: no such message" in result.output
    result = run(config_dir, "delete", "0000000000", queued[0])
    assert result.exit_code == 0
    assert "Deleted: 1 message" in result.output


def test_flush_makes_deferred_mail_due(config_dir: Path, queued: list[str]) -> None:
    assert run(config_dir, "flush").exit_code == 0
    with MailQueue(QueueSettings(config_dir.parent / "queue")) as queue:
        due = queue.read_intake(10, set(), time.time()).due
        assert [message.queue_id for message in due] == [queued[0]]


def test_missing_queue_directory_is_no_input(config_dir: Path) -> None:
    result = run(config_dir, "list")
    assert result.exit_code == sysexits.EX_NOINPUT
    assert "does not exist" in result.output


def test_flush_wakes_a_listening_qmgr(config_dir: Path, queued: list[str]) -> None:
    receiver = TriggerReceiver(trigger_path(config_dir.parent / "queue"))
    try:
        assert run(config_dir, "flush").exit_code == 0
        assert receiver.drain() == {FLUSH_DEFERRED}
    finally:
        receiver.close()
    assert queued


def test_bad_queue_setting_is_a_config_error(config_dir: Path) -> None:
    (config_dir / "main.cf").write_text("queue_sync = sometimes\n")
    result = run(config_dir, "list")
    assert result.exit_code == sysexits.EX_CONFIG
    assert "queue_sync" in result.output


def test_list_json_as_a_process_while_another_process_writes(
    config_dir: Path,
    child: Callable[..., list[str]],
    child_environment: dict[str, str],
) -> None:
    writer = subprocess.Popen(
        child(str(config_dir.parent / "queue"), "0", "0", "4"),
        stdout=subprocess.PIPE,
        env=child_environment,
    )
    try:
        assert writer.stdout is not None
        for _ in range(20):
            writer.stdout.readline()
        listing = subprocess.run(
            [sys.executable, "-m", "mta", "-c", str(config_dir), "queue", "list", "--json"],
            capture_output=True,
            env=child_environment,
            timeout=60,
            check=True,
        )
    finally:
        writer.kill()
        writer.communicate(timeout=30)
    records = [json.loads(line) for line in listing.stdout.splitlines()]
    assert len(records) >= 20
    assert {record["queue_name"] for record in records} == {"incoming"}
    assert all(len(record["recipients"]) == 2 for record in records)


def test_permission_denied_by_lmdb_is_no_permission(
    config_dir: Path, queued: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise lmdb.ReadonlyError("EACCES")

    monkeypatch.setattr("mta.queue.store.open_environment", refuse)
    result = run(config_dir, "list")
    assert result.exit_code == sysexits.EX_NOPERM
    assert "permission denied" in result.output
    assert queued
