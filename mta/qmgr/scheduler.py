"""qmgr's scheduler: transports, destinations and jobs as plain data, with a caller's clock.

A job is one delivery request: some recipients of one message for one (transport, next hop)
destination. Each destination has a concurrency window: it starts at
`initial_destination_concurrency`, grows by 1/window per successful request (slow start, as
Postfix's concurrency feedback), shrinks by 1/window per failed one (never below 1), and is
capped by `<transport>_destination_concurrency_limit`. When a destination fails
`failed_cohort_limit` times in a row with its window at 1 it is dead: its waiting jobs are
handed back for deferral and new ones are refused until `throttle_time` has passed. Every
transport also caps the requests in flight over all its destinations. Destinations with work
are served round robin, so one busy domain cannot starve the others.

No I/O and no clock of its own: every call that needs the time is given `now`, so the tests
drive it with a fake clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TransportPolicy:
    destination_limit: int = 20
    """<transport>_destination_concurrency_limit (default_destination_concurrency_limit)."""
    initial_concurrency: int = 5
    """initial_destination_concurrency."""
    transport_limit: int = 100
    """Requests in flight over all destinations of the transport (default_process_limit)."""
    failed_cohort_limit: int = 1
    """default_destination_concurrency_failed_cohort_limit."""
    throttle_time: float = 60.0
    """How long a dead destination stays dead."""


@dataclass(slots=True)
class Destination(Generic[T]):
    transport: str
    nexthop: str
    policy: TransportPolicy
    window: float
    jobs: deque[T] = field(default_factory=deque)
    active: int = 0
    failures: int = 0
    dead_until: float = 0.0

    @property
    def capacity(self) -> int:
        return min(int(self.window), self.policy.destination_limit) - self.active


class Scheduler(Generic[T]):
    """Jobs of type T wait per destination and leave through ready() within the windows."""

    def __init__(self, policy_for: Callable[[str], TransportPolicy]) -> None:
        self._policy_for = policy_for
        self.destinations: dict[tuple[str, str], Destination[T]] = {}
        self.transport_active: dict[str, int] = {}
        self._waiting: deque[Destination[T]] = deque()
        """Destinations that have jobs, in round-robin order (each at most once)."""

    def destination(self, transport: str, nexthop: str) -> Destination[T]:
        key = (transport, nexthop)
        destination = self.destinations.get(key)
        if destination is None:
            policy = self._policy_for(transport)
            window = float(max(1, min(policy.initial_concurrency, policy.destination_limit)))
            destination = Destination(transport, nexthop, policy, window)
            self.destinations[key] = destination
        return destination

    def add(self, transport: str, nexthop: str, job: T, now: float) -> bool:
        """Queue job for its destination; False if the destination is dead (defer the job)."""
        destination = self.destination(transport, nexthop)
        if destination.dead_until > now:
            return False
        if not destination.jobs:
            self._waiting.append(destination)
        destination.jobs.append(job)
        return True

    def ready(self, now: float) -> list[tuple[Destination[T], T]]:
        """Every job that may start now, taking one per destination in turn."""
        started: list[tuple[Destination[T], T]] = []
        rounds = 0
        while self._waiting and rounds < len(self._waiting):
            destination = self._waiting.popleft()
            transport = destination.transport
            in_transport = self.transport_active.get(transport, 0)
            if (
                destination.capacity <= 0
                or in_transport >= destination.policy.transport_limit
                or destination.dead_until > now
            ):
                self._waiting.append(destination)
                rounds += 1
                continue
            rounds = 0
            started.append((destination, destination.jobs.popleft()))
            destination.active += 1
            self.transport_active[transport] = in_transport + 1
            if destination.jobs:
                self._waiting.append(destination)
        return started

    def completed(self, destination: Destination[T], success: bool, now: float) -> list[T]:
        """Feed back one finished job; return waiting jobs to defer if the destination died."""
        destination.active -= 1
        self.transport_active[destination.transport] -= 1
        if success:
            destination.failures = 0
            destination.window = min(
                destination.window + 1 / destination.window,
                float(destination.policy.destination_limit),
            )
            return []
        at_floor = destination.window <= 1.0
        destination.window = max(1.0, destination.window - 1 / destination.window)
        if not at_floor:
            return []
        destination.failures += 1
        if destination.failures < destination.policy.failed_cohort_limit:
            return []
        return self.kill(destination, now)

    def kill(self, destination: Destination[T], now: float) -> list[T]:
        """Mark destination dead for its throttle time; return its waiting jobs."""
        destination.dead_until = now + destination.policy.throttle_time
        destination.failures = 0
        jobs = list(destination.jobs)
        destination.jobs.clear()
        if destination in self._waiting:
            self._waiting.remove(destination)
        return jobs

    def forget_idle(self, now: float) -> None:
        """Drop destinations with nothing queued, in flight or throttled (bounded memory)."""
        for key, destination in list(self.destinations.items()):
            if not destination.jobs and not destination.active and destination.dead_until <= now:
                del self.destinations[key]

    @property
    def pending(self) -> int:
        return sum(len(destination.jobs) for destination in self._waiting)
