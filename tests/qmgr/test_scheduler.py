"""The scheduler as data with a fake clock: slow start, limits, feedback, dead destinations."""

from __future__ import annotations

from mta.qmgr.scheduler import Scheduler, TransportPolicy

POLICY = TransportPolicy(
    destination_limit=8,
    initial_concurrency=2,
    transport_limit=10,
    failed_cohort_limit=2,
    throttle_time=60.0,
)


def make() -> Scheduler[int]:
    return Scheduler(lambda _transport: POLICY)


def test_slow_start_grows_the_window_on_success_up_to_the_limit() -> None:
    scheduler = make()
    for job in range(100):
        scheduler.add("smtp", "a.test", job, now=0)
    started = scheduler.ready(0)
    assert len(started) == 2
    for destination, _ in started:
        scheduler.completed(destination, True, 0)
    destination = scheduler.destination("smtp", "a.test")
    assert 2.8 < destination.window < 3  # +1/window per success: 2 -> 2.5 -> 2.9
    for _ in range(200):
        for dest, _ in scheduler.ready(0):
            scheduler.completed(dest, True, 0)
        assert destination.active <= POLICY.destination_limit
    assert destination.window == POLICY.destination_limit


def test_transport_limit_caps_all_destinations_together() -> None:
    scheduler = make()
    for domain in range(20):
        for job in range(5):
            scheduler.add("smtp", f"d{domain}.test", job, now=0)
    assert len(scheduler.ready(0)) == POLICY.transport_limit


def test_failures_shrink_the_window_and_a_dead_destination_is_throttled() -> None:
    scheduler = make()
    for job in range(10):
        scheduler.add("smtp", "dead.test", job, now=0)
    destination = scheduler.destination("smtp", "dead.test")
    returned: list[int] = []
    for _ in range(10):
        for dest, _ in scheduler.ready(0):
            returned += scheduler.completed(dest, False, 0)
        if destination.dead_until:
            break
    assert destination.window == 1.0
    assert destination.dead_until == 60.0
    assert returned and not destination.jobs
    assert not scheduler.add("smtp", "dead.test", 99, now=30)
    assert scheduler.add("smtp", "dead.test", 99, now=61)
    assert len(scheduler.ready(61)) == 1


def test_destinations_are_served_round_robin() -> None:
    scheduler = make()
    for job in range(4):
        scheduler.add("smtp", "busy.test", job, now=0)
    scheduler.add("smtp", "quiet.test", 100, now=0)
    jobs = [job for _, job in scheduler.ready(0)]
    assert 100 in jobs[:2]
