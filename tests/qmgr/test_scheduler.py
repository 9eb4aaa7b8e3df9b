"""The scheduler as data with a fake clock: slow start, limits, feedback, dead destinations,
rate delays and request grouping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mta.qmgr.scheduler import Feedback, Scheduler, TransportPolicy, split_requests

POLICY = TransportPolicy(
    destination_limit=8,
    initial_concurrency=2,
    transport_limit=10,
    failed_cohort_limit=1,
    dead_time=300.0,
)
SUCCESS, FAILURE, NONE = Feedback.SUCCESS, Feedback.FAILURE, Feedback.NONE


def make(policy: TransportPolicy = POLICY) -> Scheduler[int]:
    return Scheduler(lambda _transport: policy)


def fill(scheduler: Scheduler[int], name: str, count: int, now: float = 0.0) -> None:
    for job in range(count):
        assert scheduler.add("smtp", name, job, now)


def test_window_starts_at_the_initial_concurrency_and_grows_by_one_over_window() -> None:
    scheduler = make()
    fill(scheduler, "a.test", 100)
    started = scheduler.ready(0)
    assert len(started) == 2
    assert scheduler.ready(0) == []  # the window is full
    for destination, _ in started:
        scheduler.completed(destination, SUCCESS, 0)
    destination = scheduler.destination("smtp", "a.test")
    assert destination.window == pytest.approx(2 + 1 / 2 + 1 / 2.5)
    assert len(scheduler.ready(0)) == 2  # int(2.9): still two at once


def test_window_is_capped_at_the_destination_concurrency_limit() -> None:
    scheduler = make()
    fill(scheduler, "a.test", 1000)
    destination = scheduler.destination("smtp", "a.test")
    most = 0
    for _ in range(300):
        started = scheduler.ready(0)
        most = max(most, destination.active)
        for dest, _ in started:
            scheduler.completed(dest, SUCCESS, 0)
    assert most == POLICY.destination_limit
    assert destination.window == POLICY.destination_limit


def test_initial_concurrency_above_the_limit_starts_at_the_limit() -> None:
    scheduler = make(replace(POLICY, initial_concurrency=50))
    fill(scheduler, "a.test", 100)
    assert len(scheduler.ready(0)) == POLICY.destination_limit


def test_failures_shrink_the_window_but_never_below_one() -> None:
    scheduler = make(replace(POLICY, initial_concurrency=8, failed_cohort_limit=0))
    fill(scheduler, "a.test", 100)
    destination = scheduler.destination("smtp", "a.test")
    for _ in range(60):
        for dest, _ in scheduler.ready(0):
            assert scheduler.completed(dest, FAILURE, 0) == []
    assert destination.window == 1.0
    assert destination.dead_until == 0.0  # a failed cohort limit of 0: never dead
    assert len(scheduler.ready(0)) == 1


def test_transport_limit_caps_all_destinations_together() -> None:
    scheduler = make()
    for domain in range(20):
        fill(scheduler, f"d{domain}.test", 5)
    started = scheduler.ready(0)
    assert len(started) == POLICY.transport_limit
    assert scheduler.ready(0) == []
    scheduler.completed(started[0][0], SUCCESS, 0)
    assert len(scheduler.ready(0)) == 1


def test_a_failed_cohort_kills_the_destination_and_hands_back_its_jobs() -> None:
    # Window 2, failed cohort limit 1: failures add 1/2 then 1/1.5, so the second kills it.
    scheduler = make()
    fill(scheduler, "dead.test", 10)
    destination = scheduler.destination("smtp", "dead.test")
    first, second = scheduler.ready(0)
    assert scheduler.completed(first[0], FAILURE, 1.0, "connection refused") == []
    assert scheduler.ready(1.0) == []  # window 1.5: still one in flight
    handed_back = scheduler.completed(second[0], FAILURE, 2.0, "connection refused", "4.4.1")
    assert sorted(handed_back) == list(range(2, 10))
    assert destination.dead_until == 2.0 + POLICY.dead_time
    assert (destination.reason, destination.dsn) == ("connection refused", "4.4.1")
    assert not destination.jobs


def test_a_dead_destination_gets_no_connection_attempts_until_its_dead_time_is_over() -> None:
    scheduler = make()
    fill(scheduler, "dead.test", 2)
    for destination, _ in scheduler.ready(0):
        scheduler.completed(destination, FAILURE, 0, "connection refused")
    destination = scheduler.destination("smtp", "dead.test")
    assert destination.dead(0) and destination.dead(299.9)
    for now in (1.0, 100.0, 299.9):
        assert not scheduler.add("smtp", "dead.test", 99, now)  # refused: defer it
        assert scheduler.ready(now) == []
    assert scheduler.next_wakeup(100.0) is None  # nothing waits on a timer either
    # Later: the retry, with the window back at its initial size.
    fill(scheduler, "dead.test", 5, now=300.0)
    assert not destination.dead(300.0)
    assert destination.window == POLICY.initial_concurrency
    assert len(scheduler.ready(300.0)) == 2


def test_a_flush_revives_every_dead_destination() -> None:
    scheduler = make()
    for name in ("a.test", "b.test"):
        fill(scheduler, name, 3)
        destination = scheduler.destination("smtp", name)
        scheduler.kill(destination, 0, "timeout")
    scheduler.revive_all()
    assert scheduler.add("smtp", "a.test", 99, 1.0)
    assert [job for _, job in scheduler.ready(1.0)] == [99]
    assert not scheduler.destination("smtp", "b.test").dead(1.0)


def test_a_success_in_flight_revives_a_dead_destination() -> None:
    scheduler = make()
    fill(scheduler, "flaky.test", 10)
    [(destination, _), _] = scheduler.ready(0)
    assert len(scheduler.kill(destination, 0, "timeout")) == 8
    assert destination.dead(1.0)
    scheduler.completed(destination, SUCCESS, 1.0)
    assert not destination.dead(1.0)
    assert destination.window == 1.0  # the requests still in flight: a new start
    assert scheduler.add("smtp", "flaky.test", 99, 1.0)


def test_a_success_resets_the_failed_cohort_count() -> None:
    scheduler = make()
    fill(scheduler, "a.test", 40)
    destination = scheduler.destination("smtp", "a.test")
    for _ in range(10):
        [(first, _), (second, _)] = scheduler.ready(0)
        assert scheduler.completed(first, FAILURE, 0) == []
        assert destination.fail_cohorts > 0
        assert scheduler.completed(second, SUCCESS, 0) == []
        assert destination.fail_cohorts == 0.0
    assert not destination.dead(0)


def test_no_feedback_leaves_the_window_alone() -> None:
    scheduler = make()
    fill(scheduler, "a.test", 10)
    destination = scheduler.destination("smtp", "a.test")
    for dest, _ in scheduler.ready(0):
        assert scheduler.completed(dest, NONE, 0) == []
    assert destination.window == 2.0 and destination.fail_cohorts == 0.0


def test_destination_rate_delay_spaces_deliveries_one_at_a_time() -> None:
    scheduler = make(replace(POLICY, initial_concurrency=8, destination_rate_delay=10.0))
    fill(scheduler, "slow.test", 4)
    fill(scheduler, "other.test", 1)
    starts: list[float] = []
    now = 0.0
    while len(starts) < 4:
        for destination, _ in scheduler.ready(now):
            if destination.name == "slow.test":
                assert destination.active == 1  # concurrency 1 despite the window of 8
                starts.append(now)
                scheduler.completed(destination, SUCCESS, now + 2.0)  # a 2 s delivery
            else:
                scheduler.completed(destination, SUCCESS, now)
        wakeup = scheduler.next_wakeup(now)
        assert wakeup is not None or len(starts) == 4
        now = wakeup if wakeup is not None else now
    # Each delivery ends 2 s after its start; the next starts 10 s after that end.
    assert starts == [0.0, 12.0, 24.0, 36.0]


def test_destination_rate_delay_holds_nothing_back_early() -> None:
    scheduler = make(replace(POLICY, destination_rate_delay=5.0))
    fill(scheduler, "slow.test", 2)
    [(destination, _)] = scheduler.ready(0)
    scheduler.completed(destination, SUCCESS, 1.0)
    assert scheduler.ready(5.9) == []
    assert scheduler.next_wakeup(5.9) == 6.0
    assert len(scheduler.ready(6.0)) == 1


def test_destination_rate_delay_leaves_other_destinations_in_parallel() -> None:
    scheduler = make(replace(POLICY, destination_rate_delay=60.0))
    for domain in range(5):
        fill(scheduler, f"d{domain}.test", 3)
    started = scheduler.ready(0)
    assert sorted(d.name for d, _ in started) == [f"d{n}.test" for n in range(5)]


def test_transport_rate_delay_spaces_deliveries_over_all_destinations() -> None:
    scheduler = make(replace(POLICY, transport_rate_delay=20.0))
    for domain in range(3):
        fill(scheduler, f"d{domain}.test", 1)
    starts: list[tuple[float, str]] = []
    now = 0.0
    for _ in range(3):
        started = scheduler.ready(now)
        assert len(started) == 1  # one at a time over the whole transport
        [(destination, _)] = started
        starts.append((now, destination.name))
        assert scheduler.ready(now + 0.5) == []
        scheduler.completed(destination, SUCCESS, now + 1.0)
        wakeup = scheduler.next_wakeup(now + 1.0)
        now = wakeup if wakeup is not None else now
    assert starts == [(0.0, "d0.test"), (21.0, "d1.test"), (42.0, "d2.test")]
    assert scheduler.next_wakeup(now) is None


def test_transports_are_limited_separately() -> None:
    policies = {"slow": replace(POLICY, transport_rate_delay=60.0), "smtp": POLICY}
    scheduler: Scheduler[int] = Scheduler(policies.__getitem__)
    for job in range(3):
        scheduler.add("slow", "a.test", job, 0)
        scheduler.add("smtp", "a.test", job, 0)
    started = scheduler.ready(0)
    assert sorted(d.transport.name for d, _ in started) == ["slow", "smtp", "smtp"]


def test_destinations_are_served_round_robin() -> None:
    scheduler = make()
    fill(scheduler, "busy.test", 4)
    scheduler.add("smtp", "quiet.test", 100, now=0)
    jobs = [job for _, job in scheduler.ready(0)]
    assert jobs[:2] == [0, 100]


def test_a_full_destination_is_not_scanned_again_until_a_request_completes() -> None:
    scheduler = make(replace(POLICY, transport_limit=10_000))
    for domain in range(1000):
        fill(scheduler, f"d{domain}.test", 3)
    started = scheduler.ready(0)
    assert len(started) == 2000  # each window is full
    transport = scheduler.transport("smtp")
    assert not transport.ring  # so the next ready() looks at nothing
    assert scheduler.ready(0) == []
    scheduler.completed(started[0][0], SUCCESS, 0)
    assert [d.name for d in transport.ring] == [started[0][0].name]
    assert len(scheduler.ready(0)) == 1


def test_forget_idle_keeps_dead_and_rate_delayed_destinations() -> None:
    scheduler = make(replace(POLICY, initial_concurrency=1, destination_rate_delay=10.0))
    fill(scheduler, "idle.test", 1)
    fill(scheduler, "dead.test", 1)
    for destination, _ in scheduler.ready(0):
        feedback = FAILURE if destination.name == "dead.test" else SUCCESS
        scheduler.completed(destination, feedback, 0)
    scheduler.forget_idle(5.0)
    assert set(name for _, name in scheduler.destinations) == {"idle.test", "dead.test"}
    scheduler.forget_idle(10.0)
    assert set(name for _, name in scheduler.destinations) == {"dead.test"}
    scheduler.forget_idle(300.0)
    assert scheduler.destinations == {}


def test_idle_destinations_are_forgotten_past_the_memory_limit() -> None:
    scheduler: Scheduler[int] = Scheduler(lambda _transport: POLICY, memory_limit=100)
    for domain in range(100):
        fill(scheduler, f"d{domain}.test", 1)
    for destination, _ in scheduler.ready(0):
        scheduler.completed(destination, SUCCESS, 0)  # now idle: 10 at most were started
    busy = len([d for d in scheduler.destinations.values() if d.jobs or d.active])
    fill(scheduler, "new.test", 1, now=1.0)
    assert len(scheduler.destinations) == busy + 1  # the idle ones were forgotten
    for domain in range(1000):  # all busy: the limit bends, and no scan per add
        fill(scheduler, f"busy{domain}.test", 1, now=1.0)
    assert len(scheduler.destinations) == busy + 1001


def test_requests_group_recipients_by_next_hop_up_to_the_recipient_limit() -> None:
    routed = [("smtp", "a.test", f"r{n}@a.test", n) for n in range(5)]
    routed += [("smtp", "b.test", "x@b.test", 10), ("local", "here", "Joe@here", 20)]
    routed += [("smtp", "a.test", "last@a.test", 6)]
    limits = {"smtp": 2, "local": 1}
    requests = split_requests(routed, limits.__getitem__)
    assert [(r.transport, r.nexthop, r.destination, r.recipients) for r in requests] == [
        ("smtp", "a.test", "a.test", (0, 1)),
        ("smtp", "a.test", "a.test", (2, 3)),
        ("smtp", "a.test", "a.test", (4, 6)),
        ("smtp", "b.test", "b.test", (10,)),
        ("local", "here", "joe@here", (20,)),
    ]


def test_a_recipient_limit_of_one_makes_each_recipient_a_destination() -> None:
    routed = [("slow", "a.test", f"user{n}@A.test", n) for n in range(3)]
    routed.append(("slow", "a.test", "USER0@a.test", 3))
    requests = split_requests(routed, lambda _transport: 1)
    assert [r.destination for r in requests] == [
        "user0@a.test",
        "user1@a.test",
        "user2@a.test",
        "user0@a.test",
    ]
    assert all(r.nexthop == "a.test" and len(r.recipients) == 1 for r in requests)
    # With a rate delay, the same recipient waits while other recipients go in parallel.
    scheduler = make(replace(POLICY, destination_rate_delay=30.0))
    for request in requests:
        scheduler.add(request.transport, request.destination, request.recipients[0], 0)
    assert sorted(job for _, job in scheduler.ready(0)) == [0, 1, 2]
