"""qmgr's scheduler: transports, destinations and jobs as plain data, with a caller's clock.

A job is one delivery request: some recipients of one message for one destination of one
transport. As in Postfix's qmgr(8) (SCHEDULER_README, "concurrency scheduling"):

- A destination is a next hop (`split_requests` builds the requests). When the transport's
  recipient limit is 1, the destination is the recipient, so limits and delays apply per
  recipient, as Postfix's per-recipient queues do.
- Each destination has a concurrency window. It starts at
  `<transport>_initial_destination_concurrency`, grows by 1/window per request that
  completes without trouble, shrinks by 1/window (never below 1) per request that fails, and
  never exceeds `<transport>_destination_concurrency_limit`.
- Failures also count pseudo-cohorts (a pseudo-cohort is a window's worth of requests): each
  failure adds 1/window, a success resets the count. When it reaches
  `<transport>_destination_concurrency_failed_cohort_limit` (0: never) the destination is
  dead: its waiting jobs are handed back to be deferred, new jobs are refused and nothing is
  started for it (no connection storm against a host that is down) until `dead_time`
  (minimal_backoff_time) has passed or the queue is flushed. Requests still in flight
  finish; one that succeeds revives the destination. A destination that comes back starts
  again at its initial window.
- `<transport>_destination_rate_delay` > 0: one request at a time to the destination, and the
  next starts that long after the previous one finished. `<transport>_transport_rate_delay`
  (Postfix 3.1) does the same over all destinations of the transport.
- Every transport caps the requests in flight over all its destinations (transport_limit).
- Within a transport, destinations that may start a job are served round robin, so one busy
  domain cannot starve the others. A destination blocked by its window leaves the rotation and
  comes back when one of its requests completes; one blocked by a rate delay waits on a timer
  (`next_wakeup` says when to call `ready` again). Nothing is scanned that cannot start.

No I/O and no clock of its own: every call that needs the time is given `now`, so the tests
drive it with a fake clock.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Feedback(enum.Enum):
    """What a finished request says about its destination."""

    SUCCESS = "success"
    """The destination answered, whatever it said of each recipient: grow the window."""
    FAILURE = "failure"
    """A site failure: no host gave a usable session, or DNS failed: shrink it."""
    NONE = "none"
    """Our own trouble (the agent died, the transport is unavailable): no feedback."""


@dataclass(frozen=True, slots=True)
class TransportPolicy:
    destination_limit: int = 20
    """<transport>_destination_concurrency_limit (default_destination_concurrency_limit)."""
    initial_concurrency: int = 5
    """<transport>_initial_destination_concurrency (initial_destination_concurrency)."""
    transport_limit: int = 100
    """Requests in flight over all destinations of the transport (default_process_limit)."""
    failed_cohort_limit: int = 1
    """<transport>_destination_concurrency_failed_cohort_limit; 0: a destination never dies."""
    dead_time: float = 300.0
    """How long a dead destination stays dead (minimal_backoff_time, as Postfix)."""
    destination_rate_delay: float = 0.0
    """<transport>_destination_rate_delay (default_destination_rate_delay)."""
    transport_rate_delay: float = 0.0
    """<transport>_transport_rate_delay (default_transport_rate_delay)."""


@dataclass(slots=True, eq=False)
class Transport(Generic[T]):
    name: str
    policy: TransportPolicy
    active: int = 0
    next_start: float = 0.0
    """With a transport rate delay: when the next request may start."""
    ring: deque[Destination[T]] = field(default_factory=deque)
    """Destinations that may start a job as far as they are concerned, in turn."""

    def may_start(self, now: float) -> bool:
        if self.active >= self.policy.transport_limit:
            return False
        if self.policy.transport_rate_delay > 0:
            return self.active == 0 and self.next_start <= now
        return True


@dataclass(slots=True, eq=False)
class Destination(Generic[T]):
    transport: Transport[T]
    name: str
    window: float
    jobs: deque[T] = field(default_factory=deque)
    active: int = 0
    fail_cohorts: float = 0.0
    dead_until: float = 0.0
    """While in the future: dead, nothing starts and new jobs are refused."""
    reason: str = ""
    """Why it died (the last failure's text), for "delivery temporarily suspended: ..."."""
    dsn: str = ""
    """The last failure's status code (4.4.1), for the mail deferred while it is dead."""
    next_start: float = 0.0
    """With a destination rate delay: when the next request may start."""
    listed: bool = False
    """In its transport's ring or on the timer heap (at most once in either)."""

    @property
    def limit(self) -> int:
        """Requests that may be in flight at once: the window, or 1 with a rate delay."""
        policy = self.transport.policy
        if policy.destination_rate_delay > 0:
            return 1
        return min(int(self.window), policy.destination_limit)

    @property
    def capacity(self) -> int:
        return self.limit - self.active

    def dead(self, now: float) -> bool:
        return self.dead_until > now


class Scheduler(Generic[T]):
    """Jobs of type T wait per destination and leave through ready() within the limits."""

    def __init__(
        self, policy_for: Callable[[str], TransportPolicy], memory_limit: int = 20000
    ) -> None:
        self._policy_for = policy_for
        self.memory_limit = memory_limit
        """Destinations kept before idle ones are forgotten (qmgr_message_recipient_limit,
        which in Postfix also bounds the dead-destination cache)."""
        self._forget_at = memory_limit
        self.transports: dict[str, Transport[T]] = {}
        self.destinations: dict[tuple[str, str], Destination[T]] = {}
        self._timers: list[tuple[float, int, Destination[T]]] = []
        """(when, tie-breaker, destination) of destinations waiting for their rate delay."""
        self._sequence = itertools.count()

    def transport(self, name: str) -> Transport[T]:
        transport = self.transports.get(name)
        if transport is None:
            transport = self.transports[name] = Transport(name, self._policy_for(name))
        return transport

    def destination(self, transport: str, name: str) -> Destination[T]:
        key = (transport, name)
        destination = self.destinations.get(key)
        if destination is None:
            owner = self.transport(transport)
            destination = Destination(owner, name, self._initial_window(owner.policy))
            self.destinations[key] = destination
        return destination

    @staticmethod
    def _initial_window(policy: TransportPolicy) -> float:
        return float(max(1, min(policy.initial_concurrency, policy.destination_limit)))

    def add(self, transport: str, name: str, job: T, now: float) -> bool:
        """Queue job for its destination; False if the destination is dead (defer the job)."""
        if len(self.destinations) >= self._forget_at:
            # Bounded memory; doubling the mark keeps this rare when most are still busy.
            self.forget_idle(now)
            self._forget_at = max(self.memory_limit, 2 * len(self.destinations))
        destination = self.destination(transport, name)
        self._revive_if_due(destination, now)
        if destination.dead(now):
            return False
        destination.jobs.append(job)
        self._offer(destination, now)
        return True

    def ready(self, now: float) -> list[tuple[Destination[T], T]]:
        """Every job that may start now, one per destination in turn within each transport."""
        self._fire_timers(now)
        started: list[tuple[Destination[T], T]] = []
        for transport in self.transports.values():
            ring = transport.ring
            while ring and transport.may_start(now):
                destination = ring.popleft()
                destination.listed = False
                if (
                    not destination.jobs
                    or destination.capacity <= 0
                    or destination.dead(now)
                    or destination.next_start > now
                ):
                    # Blocked meanwhile: it comes back through _offer when that changes.
                    self._offer(destination, now)
                    continue
                started.append((destination, destination.jobs.popleft()))
                destination.active += 1
                transport.active += 1
                self._offer(destination, now)
        return started

    def completed(
        self,
        destination: Destination[T],
        feedback: Feedback,
        now: float,
        reason: str = "",
        dsn: str = "",
    ) -> list[T]:
        """Feed back one finished request; return the waiting jobs to defer if it died."""
        transport = destination.transport
        policy = transport.policy
        destination.active -= 1
        transport.active -= 1
        self._revive_if_due(destination, now)
        if policy.destination_rate_delay > 0:
            destination.next_start = now + policy.destination_rate_delay
        if policy.transport_rate_delay > 0:
            transport.next_start = now + policy.transport_rate_delay
        handed_back: list[T] = []
        if feedback is Feedback.SUCCESS:
            if destination.dead_until:
                self._revive(destination)
            else:
                destination.window = min(
                    destination.window + 1 / destination.window, float(policy.destination_limit)
                )
            destination.fail_cohorts = 0.0
        elif feedback is Feedback.FAILURE and not destination.dead(now):
            destination.fail_cohorts += 1 / destination.window
            destination.window = max(1.0, destination.window - 1 / destination.window)
            limit = policy.failed_cohort_limit
            if limit > 0 and destination.fail_cohorts >= limit:
                handed_back = self.kill(destination, now, reason, dsn)
        self._offer(destination, now)
        return handed_back

    def kill(
        self, destination: Destination[T], now: float, reason: str = "", dsn: str = ""
    ) -> list[T]:
        """Mark destination dead for its dead time; return its waiting jobs."""
        destination.dead_until = now + destination.transport.policy.dead_time
        destination.reason = reason
        destination.dsn = dsn
        destination.fail_cohorts = 0.0
        jobs = list(destination.jobs)
        destination.jobs.clear()
        return jobs

    def revive_all(self) -> None:
        """Give every dead destination another chance now (Postfix's qmgr on a flush)."""
        for destination in self.destinations.values():
            if destination.dead_until:
                self._revive(destination)

    def _revive_if_due(self, destination: Destination[T], now: float) -> None:
        if destination.dead_until and not destination.dead(now):
            self._revive(destination)

    def _revive(self, destination: Destination[T]) -> None:
        """Back from the dead: the best window is anyone's guess, so start again (Postfix)."""
        destination.dead_until = 0.0
        destination.reason = destination.dsn = ""
        destination.fail_cohorts = 0.0
        initial = self._initial_window(destination.transport.policy)
        destination.window = float(destination.active) if destination.active else initial

    def _offer(self, destination: Destination[T], now: float) -> None:
        """Put a destination with jobs in its transport's rotation, or on a timer, if it may
        start one as far as its own state goes; a blocked one is offered again when a request
        of it completes."""
        if destination.listed or not destination.jobs or destination.capacity <= 0:
            return
        if destination.dead(now):
            return
        destination.listed = True
        if destination.next_start > now:
            heapq.heappush(
                self._timers, (destination.next_start, next(self._sequence), destination)
            )
        else:
            destination.transport.ring.append(destination)

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, destination = heapq.heappop(timers)
            destination.listed = False
            self._offer(destination, now)

    def next_wakeup(self, now: float) -> float | None:
        """When ready() may next start something that it cannot start now because of a rate
        delay (None: nothing is waiting for one). Jobs held back by a window or transport
        limit start when a request completes, which calls for ready() anyway."""
        times = [when for when, _, _ in self._timers[:1]]
        for transport in self.transports.values():
            if (
                transport.ring
                and transport.active == 0
                and transport.policy.transport_rate_delay > 0
                and transport.next_start > now
            ):
                times.append(transport.next_start)
        return min(times) if times else None

    def forget_idle(self, now: float) -> None:
        """Drop destinations with nothing queued or in flight and no state worth keeping
        (dead, or within a rate delay): bounded memory."""
        for key, destination in list(self.destinations.items()):
            if (
                not destination.jobs
                and not destination.active
                and not destination.dead(now)
                and destination.next_start <= now
            ):
                del self.destinations[key]


@dataclass(frozen=True, slots=True)
class Request(Generic[R]):
    """Recipients of one message that go in one delivery request."""

    transport: str
    nexthop: str
    destination: str
    """The scheduler's destination: the next hop, or the recipient when the limit is 1."""
    recipients: tuple[R, ...]


def split_requests(
    routed: Iterable[tuple[str, str, str, R]], recipient_limit: Callable[[str], int]
) -> list[Request[R]]:
    """Group (transport, nexthop, address, recipient) by transport and next hop, in the order
    given, into requests of at most the transport's recipient limit
    (`<transport>_destination_recipient_limit`). With a limit of 1 each recipient is its own
    destination, named by its address in lower case."""
    groups: dict[tuple[str, str], list[tuple[str, R]]] = {}
    for transport, nexthop, address, recipient in routed:
        groups.setdefault((transport, nexthop), []).append((address, recipient))
    requests: list[Request[R]] = []
    for (transport, nexthop), members in groups.items():
        limit = max(1, recipient_limit(transport))
        if limit == 1:
            requests += [
                Request(transport, nexthop, address.lower(), (recipient,))
                for address, recipient in members
            ]
            continue
        for start in range(0, len(members), limit):
            chunk = tuple(recipient for _, recipient in members[start : start + limit])
            requests.append(Request(transport, nexthop, nexthop, chunk))
    return requests
