"""The LMDB queue: enqueue, read back, move, results, deletion, corruption, map growth, limits."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import lmdb
import pytest

from hotpath.queue import QUEUE_ID_LENGTH, parse_queue_id
from mta.queue import (
    QUEUE_ID_PLACEHOLDER,
    BodyType,
    Committer,
    DsnRet,
    MailQueue,
    Message,
    MessageLimitError,
    MessageLimits,
    Notify,
    QueueError,
    QueueFullError,
    QueueName,
    QueueSettings,
    QueueTransaction,
    Recipient,
    RecipientResult,
    RecipientStatus,
    UnknownQueueIdError,
)
from mta.queue.store import PreparedMessage

NASTY = "a\r\nRCPT TO:<evil@x>\x00\udcff\u00e9"


def due_ids(queue: MailQueue, before: float) -> list[str]:
    """The deferred mail qmgr's intake would take at time before, earliest first."""
    return [message.queue_id for message in queue.read_intake(10, set(), before).due]


def test_enqueued_message_reads_back_exactly(mail_queue: MailQueue) -> None:
    message = Message(
        sender=NASTY,
        recipients=(
            Recipient(
                "u@example.net",
                orig_address="U@Example.NET",
                orcpt="rfc822;U@x",
                notify=Notify.SUCCESS | Notify.DELAY,
            ),
            Recipient("\u00fcser@\u00e9xample.org"),
        ),
        content=b"Subject: x\r\n\r\n\x00.\r\n\xff" * 100,
        arrival_time=1_700_000_000.123456,
        extras={"client_address": "192.0.2.1", "helo_name": NASTY},
        dsn_ret=DsnRet.HDRS,
        envid="env\r\nid",
        body_type=BodyType.EIGHT_BIT_MIME,
        smtputf8=True,
    )
    [queue_id] = mail_queue.enqueue([message])
    queued = mail_queue.get(queue_id)
    assert queued.queue_name == "incoming"
    assert (queued.sender, queued.envid, dict(queued.extras)) == (
        NASTY,
        "env\r\nid",
        dict(message.extras),
    )
    assert (queued.dsn_ret, queued.body_type, queued.smtputf8) == (
        DsnRet.HDRS,
        BodyType.EIGHT_BIT_MIME,
        True,
    )
    assert queued.arrival_time == pytest.approx(message.arrival_time, abs=1e-6)
    assert queued.size == len(message.content)
    assert tuple(state.recipient for state in queued.recipients) == message.recipients
    assert mail_queue.content(queue_id) == message.content


def test_trace_header_gets_the_queue_id_the_commit_gives_out(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    template = b"Received: by mx with ESMTP id " + QUEUE_ID_PLACEHOLDER + b"; now\r\n"
    messages = [replace(make(serial), trace_header=template) for serial in range(3)]
    queue_ids = mail_queue.enqueue(messages)
    for queue_id, message in zip(queue_ids, messages, strict=True):
        expected = f"Received: by mx with ESMTP id {queue_id}; now\r\n".encode()
        assert mail_queue.content(queue_id) == expected + message.content
        assert mail_queue.get(queue_id).size == len(expected) + len(message.content)


def test_queue_ids_are_unique_short_and_sorted_by_arrival(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    first = mail_queue.enqueue([make(n) for n in range(50)])
    second = mail_queue.enqueue([make(n) for n in range(50)])
    ids = first + second
    assert len(set(ids)) == 100
    assert ids == sorted(ids)
    assert all(len(queue_id) == QUEUE_ID_LENGTH for queue_id in ids)
    assert abs(parse_queue_id(ids[0]) / 1e6 - time.time()) < 60


def test_move_is_one_queue_at_a_time(mail_queue: MailQueue, make: Callable[..., Message]) -> None:
    ids = mail_queue.enqueue([make(n) for n in range(3)])
    assert mail_queue.move(ids[:2], QueueName.HOLD) == ids[:2]
    assert mail_queue.move(ids, QueueName.HOLD) == ids[2:]
    assert mail_queue.move(ids, QueueName.INCOMING, only_from=[QueueName.DEFERRED]) == []
    assert mail_queue.queue_ids(QueueName.HOLD) == ids
    assert mail_queue.queue_ids(QueueName.INCOMING) == []
    assert {mail_queue.locate(queue_id) for queue_id in ids} == {QueueName.HOLD}


def test_a_message_marked_hold_is_committed_into_hold(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    async def submit() -> str:
        committer = Committer(mail_queue)
        queue_id = await committer.submit(replace(make(2), hold=True))
        await committer.close()
        return queue_id

    [normal] = mail_queue.enqueue([make(1)])
    held = asyncio.run(submit())
    assert mail_queue.queue_ids(QueueName.HOLD) == [held]
    assert mail_queue.queue_ids(QueueName.INCOMING) == [normal]
    intake = mail_queue.read_intake(10, set(), None)
    assert [m.queue_id for m in intake.incoming] == [normal]  # qmgr never sees held mail
    assert mail_queue.content(held) == make(2).content


def test_unknown_and_malformed_ids_are_left_alone(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    [queue_id] = mail_queue.enqueue([make(1)])
    assert mail_queue.move(["0000000000"], QueueName.HOLD) == []
    with pytest.raises(UnknownQueueIdError):
        mail_queue.move(["../../x"], QueueName.HOLD)
    with pytest.raises(UnknownQueueIdError):
        mail_queue.get("0000000000")
    assert mail_queue.locate(queue_id) is QueueName.INCOMING


def test_results_defer_a_message_until_its_next_try(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    [queue_id] = mail_queue.enqueue([make(1, recipients=2)])
    assert mail_queue.move([queue_id], QueueName.ACTIVE) == [queue_id]
    now = time.time()
    finished = mail_queue.record_results(
        [
            RecipientResult(queue_id, 0, RecipientStatus.DELIVERED, "2.0.0", "250 ok"),
            RecipientResult(queue_id, 1, RecipientStatus.DEFERRED, "4.4.1", "refused", now + 60),
        ]
    )
    assert finished == []
    assert mail_queue.locate(queue_id) is QueueName.DEFERRED
    assert due_ids(mail_queue, now) == []
    assert due_ids(mail_queue, now + 61) == [queue_id]
    state = mail_queue.get(queue_id).recipients[1]
    assert (state.status, state.attempts, state.dsn, state.reason) == (
        RecipientStatus.DEFERRED,
        1,
        "4.4.1",
        "refused",
    )


def test_results_report_finished_messages(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    [queue_id] = mail_queue.enqueue([make(1, recipients=1)])
    mail_queue.move([queue_id], QueueName.ACTIVE)
    result = RecipientResult(queue_id, 0, RecipientStatus.BOUNCED, "5.1.1", "no such user")
    assert mail_queue.record_results([result]) == [queue_id]
    assert mail_queue.delete([queue_id]) == [queue_id]
    assert mail_queue.locate(queue_id) is None
    assert mail_queue.delete([queue_id]) == []


def test_delete_removes_every_record(
    mail_queue: MailQueue, queue_dir: Path, make: Callable[..., Message]
) -> None:
    ids = mail_queue.enqueue([make(n, recipients=3) for n in range(3)])
    mail_queue.move(ids[1:2], QueueName.DEFERRED, next_try=time.time() + 100)
    assert mail_queue.delete(ids[:2]) == ids[:2]
    assert [m.queue_id for m in mail_queue.scan()] == ids[2:]
    assert len(mail_queue.get(ids[2]).recipients) == 3
    assert due_ids(mail_queue, time.time() + 1000) == []


def test_flush_makes_deferred_mail_due_now(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    ids = mail_queue.enqueue([make(n) for n in range(2)])
    mail_queue.move(ids, QueueName.DEFERRED, next_try=time.time() + 3600)
    assert due_ids(mail_queue, time.time()) == []
    assert mail_queue.flush_deferred() == 2
    assert due_ids(mail_queue, time.time()) == ids


def test_active_mail_returns_to_incoming_at_start(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    with MailQueue(QueueSettings(queue_dir)) as queue:
        ids = queue.enqueue([make(n) for n in range(3)])
        queue.move(ids[:2], QueueName.ACTIVE)
    with MailQueue(QueueSettings(queue_dir)) as queue:
        assert queue.clear_stale_readers() == 0
        assert queue.recover_active() == 2
        assert queue.queue_ids(QueueName.INCOMING) == ids


def test_corrupt_record_moves_to_corrupt_queue_with_a_log_line(
    mail_queue: MailQueue, caplog: pytest.LogCaptureFixture, make: Callable[..., Message]
) -> None:
    ids = mail_queue.enqueue([make(n) for n in range(3)])
    env = mail_queue._env
    with env.begin(write=True) as txn:
        txn.put(ids[1].encode(), b"E\x01garbage", db=mail_queue._db.msg)
        txn.put(ids[2].encode() + b"\x00\x00\x00\x01", b"R\x01\x00", db=mail_queue._db.rcpt)
    with caplog.at_level(logging.WARNING, logger="mta.queue"):
        assert [m.queue_id for m in mail_queue.scan()] == ids[:1]
    assert mail_queue.queue_ids(QueueName.CORRUPT) == ids[1:]
    assert sum("corrupt queue record" in r.getMessage() for r in caplog.records) == 2
    assert [m.queue_id for m in mail_queue.scan()] == ids[:1]
    with pytest.raises(UnknownQueueIdError):
        mail_queue.get("0000000000")


def test_limits_are_checked_before_anything_is_written(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    limits = MessageLimits(max_content_bytes=100, max_recipients=2, max_address_bytes=20)
    with MailQueue(QueueSettings(queue_dir, limits=limits)) as queue:
        for message in (
            make(1, size=101),
            make(1, size=50, recipients=3),
            Message("x" * 21, (Recipient("a@b"),), b"x"),
            Message("", (), b"x"),
        ):
            with pytest.raises(MessageLimitError):
                queue.enqueue([message])
        assert queue.count(QueueName.INCOMING) == 0


def test_settings_come_from_main_cf_parameters(tmp_path: Path) -> None:
    parameters = {"queue_sync": "unsafe", "queue_max_size": "1048576", "message_size_limit": "5"}
    settings = QueueSettings.from_parameters(tmp_path, lambda name: parameters.get(name, ""))
    assert (settings.sync, settings.max_size, settings.limits.max_content_bytes) == (
        "unsafe",
        1048576,
        5,
    )
    with pytest.raises(QueueError, match="queue_sync"):
        QueueSettings.from_parameters(tmp_path, lambda name: "fast" if name == "queue_sync" else "")


def test_default_mode_is_durable(mail_queue: MailQueue) -> None:
    flags = mail_queue._env.flags()
    assert flags["sync"] and flags["metasync"]
    assert not flags["writemap"] and not flags["map_async"]


def test_map_grows_on_map_full(
    queue_dir: Path, caplog: pytest.LogCaptureFixture, make: Callable[..., Message]
) -> None:
    settings = QueueSettings(queue_dir, map_size=256 * 1024, max_size=8 * 1024 * 1024)
    with MailQueue(settings) as queue, caplog.at_level(logging.INFO, logger="mta.queue"):
        ids = queue.enqueue([make(n, size=20_000) for n in range(100)])
        assert queue._env.info()["map_size"] > settings.map_size
        assert "queue map grown" in caplog.text
        assert [queue.content(queue_id) for queue_id in ids] == [
            make(n, size=20_000).content for n in range(100)
        ]


def test_queue_max_size_refuses_new_mail_and_keeps_old(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    settings = QueueSettings(queue_dir, map_size=128 * 1024, max_size=1024 * 1024)
    with MailQueue(settings) as queue:
        kept = queue.enqueue([make(n, size=50_000) for n in range(8)])
        with pytest.raises(QueueFullError) as refused:
            for n in range(8, 100):
                kept += queue.enqueue([make(n, size=50_000)])
        assert refused.value.reply.startswith("452 4.3.1 ")
        assert [queue.content(queue_id) for queue_id in kept] == [
            make(n, size=50_000).content for n in range(len(kept))
        ]
        queue.delete(kept[: len(kept) // 2])
        assert queue.enqueue([make(999, size=1000)])


def test_committer_fits_what_it_can_when_the_queue_fills(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    settings = QueueSettings(queue_dir, map_size=128 * 1024, max_size=512 * 1024)

    async def run() -> list[str | BaseException]:
        with MailQueue(settings) as queue:
            committer = Committer(queue)
            outcomes = await asyncio.gather(
                *(committer.submit(make(n, size=40_000)) for n in range(30)),
                return_exceptions=True,
            )
            await committer.close()
            for serial, outcome in enumerate(outcomes):
                if isinstance(outcome, str):
                    assert queue.content(outcome) == make(serial, size=40_000).content
            return outcomes

    outcomes = asyncio.run(run())
    assert any(isinstance(outcome, str) for outcome in outcomes)
    assert any(isinstance(outcome, QueueFullError) for outcome in outcomes)


def test_committer_batches_concurrent_producers(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    async def run() -> tuple[list[str], int]:
        committer = Committer(mail_queue, max_batch=64)
        ids = await asyncio.gather(*(committer.submit(make(n)) for n in range(200)))
        await committer.close()
        return list(ids), committer.commits

    ids, commits = asyncio.run(run())
    assert len(set(ids)) == 200
    assert commits <= 5
    assert [mail_queue.content(queue_id) for queue_id in ids] == [
        make(n).content for n in range(200)
    ]


class ThreadNotingQueue(MailQueue):
    """A real queue that notes which thread committed each message."""

    def __init__(self, settings: QueueSettings) -> None:
        super().__init__(settings)
        self.committed_in: dict[str, str] = {}

    def enqueue_prepared(self, batch: Sequence[PreparedMessage]) -> list[str]:
        ids = super().enqueue_prepared(batch)
        self.committed_in.update(dict.fromkeys(ids, threading.current_thread().name))
        return ids


def test_a_lone_inline_submission_commits_in_the_calling_thread(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    queue = ThreadNotingQueue(QueueSettings(queue_dir, map_size=1 << 20))

    async def run() -> str:
        committer = Committer(queue)
        queue_id = await committer.submit(make(1), inline=True)
        await committer.close()
        return queue_id

    queue_id = asyncio.run(run())
    assert queue.committed_in == {queue_id: threading.current_thread().name}
    assert queue.content(queue_id) == make(1).content
    queue.close()


def test_an_inline_submission_joins_the_commit_thread_when_another_is_waiting(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    queue = ThreadNotingQueue(QueueSettings(queue_dir, map_size=1 << 20))

    async def run() -> list[str]:
        committer = Committer(queue)
        first = asyncio.ensure_future(committer.submit(make(1)))
        await asyncio.sleep(0)  # the first is now unresolved, waiting for the commit thread
        second = await committer.submit(make(2), inline=True)
        ids = [await first, second]
        await committer.close()
        return ids

    ids = asyncio.run(run())
    assert queue.committed_in == dict.fromkeys(ids, "mta-commit")
    assert [queue.content(queue_id) for queue_id in ids] == [make(1).content, make(2).content]
    queue.close()


def test_committer_keeps_the_loop_free_during_a_commit(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    async def run() -> int:
        committer = Committer(mail_queue)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for n in range(20):
            await committer.submit(make(n, size=100_000))
        task.cancel()
        await committer.close()
        return ticks

    assert asyncio.run(run()) > 20


def test_committer_fails_only_the_message_over_a_limit(
    queue_dir: Path, make: Callable[..., Message]
) -> None:
    limits = MessageLimits(max_content_bytes=2000)

    async def run() -> list[str | BaseException]:
        with MailQueue(QueueSettings(queue_dir, limits=limits)) as queue:
            committer = Committer(queue)
            sizes = [1000, 3000, 1000]
            outcomes = await asyncio.gather(
                *(committer.submit(make(n, size=s)) for n, s in enumerate(sizes)),
                return_exceptions=True,
            )
            await committer.close()
            return outcomes

    first, second, third = asyncio.run(run())
    assert isinstance(first, str) and isinstance(third, str)
    assert isinstance(second, MessageLimitError)


def test_committer_bounds_the_waiting_list(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    async def run() -> list[str | BaseException]:
        committer = Committer(mail_queue, max_waiting=5)
        outcomes = await asyncio.gather(
            *(committer.submit(make(n)) for n in range(8)), return_exceptions=True
        )
        await committer.close()
        return outcomes

    outcomes = asyncio.run(run())
    assert sum(isinstance(o, QueueFullError) for o in outcomes) == 3


def test_schema_version_mismatch_is_refused(queue_dir: Path, mail_queue: MailQueue) -> None:
    env = mail_queue._env
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", b"\x00\x00\x00\x63", db=mail_queue._db.meta)
    mail_queue.close()
    with pytest.raises(QueueError, match="schema version 99"):
        MailQueue(QueueSettings(queue_dir))
    assert isinstance(lmdb.version(), tuple)


def test_qmgr_handle_skips_only_the_meta_sync(queue_dir: Path) -> None:
    with MailQueue(QueueSettings(queue_dir, metasync=False)) as queue:
        flags = queue._env.flags()
    assert flags["sync"] and not flags["metasync"]
    assert not flags["writemap"] and not flags["map_async"]


def test_one_transaction_records_deletes_and_takes_together(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    first, second = mail_queue.enqueue([make(1, recipients=1), make(2, recipients=1)])
    assert mail_queue.move([first], QueueName.ACTIVE) == [first]

    def cycle(txn: QueueTransaction) -> tuple[list[str], list[str], list[str]]:
        done = txn.record_results(
            [RecipientResult(first, 0, RecipientStatus.DELIVERED, "2.0.0", "sent")]
        )
        # As qmgr's commit: mark what it still works on active, from where its intake saw it.
        intake = (QueueName.INCOMING, QueueName.DEFERRED)
        working = txn.move([first, second], QueueName.ACTIVE, only_from=intake)
        return done, txn.delete(done), working

    assert mail_queue.transaction(cycle) == ([first], [first], [second])
    assert mail_queue.locate(first) is None
    assert mail_queue.locate(second) is QueueName.ACTIVE


def test_a_failing_transaction_changes_nothing(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    (queue_id,) = mail_queue.enqueue([make(1)])

    def cycle(txn: QueueTransaction) -> None:
        txn.move([queue_id], QueueName.ACTIVE)
        txn.delete([queue_id])
        raise QueueError("stop before the commit")

    with pytest.raises(QueueError):
        mail_queue.transaction(cycle)
    assert mail_queue.locate(queue_id) is QueueName.INCOMING
    assert mail_queue.get(queue_id).recipients
