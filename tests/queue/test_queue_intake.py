"""qmgr's read-only intake (MailQueue.read_intake): what it reads, skips and leaves in place."""

from __future__ import annotations

import time
from collections.abc import Callable

from mta.queue import MailQueue, Message, QueueName, RecipientResult, RecipientStatus


def test_intake_reads_due_then_incoming_skipping_held_ids_and_moves_nothing(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    now = time.time()
    [due, later] = mail_queue.enqueue([make(1), make(2)])
    mail_queue.move([due, later], QueueName.ACTIVE)
    mail_queue.record_results(
        [
            RecipientResult(due, index, RecipientStatus.DEFERRED, "4.0.0", "busy", now - 1)
            for index in range(2)
        ]
        + [
            RecipientResult(later, index, RecipientStatus.DEFERRED, "4.0.0", "busy", now + 60)
            for index in range(2)
        ]
    )
    new = mail_queue.enqueue([make(n) for n in range(3, 7)])

    intake = mail_queue.read_intake(4, {new[0]}, now)
    assert [m.queue_id for m in intake.due] == [due]
    assert [m.queue_id for m in intake.incoming] == new[1:4]
    assert intake.incoming[0].recipients[0].recipient == make(4).recipients[0]
    assert mail_queue.queue_ids(QueueName.INCOMING) == new  # nothing moved
    assert mail_queue.locate(due) is QueueName.DEFERRED

    no_deferred = mail_queue.read_intake(10, set(new[:2]), None)
    assert [m.queue_id for m in no_deferred.due] == []
    assert [m.queue_id for m in no_deferred.incoming] == new[2:]
    assert mail_queue.read_intake(10, {due}, now).due == []


def test_intake_gives_new_mail_its_share_despite_10000_due_deferred_messages(
    mail_queue: MailQueue, make: Callable[..., Message]
) -> None:
    now = time.time()
    backlog = mail_queue.enqueue([make(n, size=64, recipients=1) for n in range(10_000)])
    mail_queue.move(backlog, QueueName.ACTIVE)
    mail_queue.record_results(
        [RecipientResult(i, 0, RecipientStatus.DEFERRED, "4.0.0", "busy", now - 1) for i in backlog]
    )
    new = mail_queue.enqueue([make(n, size=64, recipients=1) for n in range(3)])

    intake = mail_queue.read_intake(500, set(), now, due_first=250)
    assert [m.queue_id for m in intake.incoming] == new
    assert len(intake.due) == 497  # new mail left room: deferred mail takes it
    assert [m.queue_id for m in intake.due] == backlog[:497]
    incoming_first = mail_queue.read_intake(4, set(new[:1]), now, due_first=0)
    assert [m.queue_id for m in incoming_first.incoming] == new[1:]
    assert [m.queue_id for m in incoming_first.due] == backlog[:2]
    # Without a share, deferred mail comes first, as before.
    assert mail_queue.read_intake(500, set(), now).incoming == []
