"""The active queue's intake as data: limits on messages and recipients, and turns between
new and deferred mail so that a deferred backlog never starves fresh mail."""

from __future__ import annotations

from mta.qmgr.admission import Admission, interleave


def test_intake_stops_at_the_message_active_limit_and_resumes_when_messages_leave() -> None:
    admission = Admission(message_limit=100, recipient_limit=10_000, batch=30)
    active = 0
    for expected in (30, 30, 30, 10, 0):
        plan = admission.plan(active, 0, deferred=False)
        assert plan.limit == expected
        active += admission.admit([1] * plan.limit)
    assert active == 100
    # Done messages waiting for their commit already make room for the next intake.
    assert admission.plan(active, 5, deferred=False).limit == 5
    for _ in range(20):
        admission.leave(1)
    active -= 20
    assert admission.plan(active, 0, deferred=False).limit == 20


def test_intake_stops_at_the_recipient_limit_and_what_did_not_fit_stays_queued() -> None:
    admission = Admission(message_limit=100, recipient_limit=10, batch=100)
    assert admission.admit([4, 4, 4, 1]) == 2  # 8 in memory; the third would make 12
    assert admission.recipients == 8
    # The queue is full for now: no intake reads the same messages again in vain ...
    assert admission.plan(2, 0, deferred=True).limit == 0
    assert admission.plan(2, 0, deferred=False).limit == 0
    # ... until a message leaves; the ones left out were never taken, so nothing is lost.
    admission.leave(4)
    assert admission.plan(1, 0, deferred=False).limit == 99
    assert admission.admit([4, 4, 1]) == 1
    assert admission.recipients == 8


def test_a_message_larger_than_the_recipient_limit_goes_in_alone() -> None:
    admission = Admission(message_limit=100, recipient_limit=10, batch=100)
    assert admission.admit([3]) == 1
    assert admission.admit([50]) == 0  # not while others are in memory
    admission.leave(3)
    assert admission.plan(0, 0, deferred=False).limit == 100
    assert admission.admit([50, 1]) == 1  # alone: it is never starved
    assert admission.plan(1, 0, deferred=False).limit == 0  # over the limit: wait
    admission.leave(50)
    assert admission.plan(0, 0, deferred=False).limit == 100


def test_deferred_mail_gets_half_of_each_intake_and_the_odd_one_in_turn() -> None:
    admission = Admission(message_limit=20_000, recipient_limit=20_000, batch=500)
    plan = admission.plan(0, 0, deferred=True)
    assert (plan.limit, plan.due_first) == (500, 250)
    assert admission.plan(0, 0, deferred=False).due_first == 0  # no deferred look: none
    shares = []
    for _ in range(4):
        plan = admission.plan(19_999, 0, deferred=True)
        shares.append((plan.limit, plan.due_first, plan.deferred_first))
    assert shares == [(1, 1, True), (1, 0, False), (1, 1, True), (1, 0, False)]


def simulate_intake(
    due_waiting: int, new_waiting: int, limit: int, due_first: int
) -> tuple[int, int]:
    """How many due and new messages MailQueue.read_intake reads (tests/queue checks it)."""
    due = min(due_waiting, due_first)
    incoming = min(new_waiting, limit - due)
    if due == due_first:
        due = min(due_waiting, limit - incoming)
    return due, incoming


def test_a_deferred_backlog_does_not_starve_new_mail() -> None:
    # 10,000 due deferred messages and new mail trickling in (40 per cycle): every cycle's
    # new mail enters the active queue in that same cycle, and the backlog still drains.
    admission = Admission(message_limit=20_000, recipient_limit=20_000, batch=500)
    backlog, waiting_new = 10_000, 0
    cycles = 0
    while backlog:
        cycles += 1
        waiting_new += 40
        plan = admission.plan(0, 0, deferred=True)
        due, new = simulate_intake(backlog, waiting_new, plan.limit, plan.due_first)
        order = interleave(["d"] * due, ["n"] * new, plan.deferred_first)
        admitted = admission.admit([1] * len(order))
        assert admitted == len(order)
        assert new == waiting_new  # all the new mail of this cycle is in
        backlog, waiting_new = backlog - due, waiting_new - new
        for _ in range(admitted):  # delivered before the next cycle
            admission.leave(1)
    assert cycles <= 22  # 460 deferred per cycle: the backlog is not starved either


def test_new_mail_gets_room_in_turn_when_the_active_queue_is_full_of_deferred_mail() -> None:
    # The active queue is full; one message leaves per cycle. New mail gets every other slot
    # although 10,000 deferred messages are due.
    admission = Admission(message_limit=100, recipient_limit=20_000, batch=500)
    admission.admit([1] * 100)
    taken = []
    for _ in range(6):
        admission.leave(1)
        plan = admission.plan(99, 0, deferred=True)
        due, new = simulate_intake(10_000, 10, plan.limit, plan.due_first)
        order = interleave(["deferred"] * due, ["new"] * new, plan.deferred_first)
        assert admission.admit([1] * len(order)) == 1
        taken += order
    assert taken.count("new") == 3 and taken.count("deferred") == 3


def test_admission_order_alternates_between_deferred_and_new_mail() -> None:
    assert interleave([1, 2, 3], ["a"], deferred_first=True) == [1, "a", 2, 3]
    assert interleave([1, 2], ["a", "b", "c"], deferred_first=False) == ["a", 1, "b", 2, "c"]
    # When the recipient limit cuts an intake short, both kinds lose alike.
    admission = Admission(message_limit=100, recipient_limit=4, batch=100)
    order = interleave(["d1", "d2", "d3"], ["n1", "n2", "n3"], deferred_first=True)
    assert order[: admission.admit([1] * len(order))] == ["d1", "n1", "d2", "n2"]
