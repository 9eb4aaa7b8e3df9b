"""The queue manager's event loop: intake, scheduling, agent connections, results, bounces.

Intake: a trigger ('I' from smtpd, 'F' from `mta queue flush`) or the queue_run_delay timer
reads new and due deferred mail in a read-only transaction (up to qmgr_intake_batch_limit at
a time, at most qmgr_message_active_limit at once and qmgr_message_recipient_limit
recipients, new and deferred mail in turn: mta.qmgr.admission; skipping the messages qmgr
already works on), each message is logged `from=<...>, size=N, nrcpt=N (queue active)`, and
its unfinished recipients are resolved and split into delivery requests. mta.qmgr.scheduler
says which may start (destination windows, dead destinations, rate delays; a timer wakes
dispatch when a rate delay ends). Requests go to the agents over kept-open connections,
several in flight on each, frames written together once per loop iteration.

Results: the agent logs each recipient and then answers. qmgr's queue changes (marking taken
mail active, recording results, deferred mail's next try, queueing bounces, deleting finished
mail) gather in memory and are committed together in one write transaction once the oldest
is qmgr_commit_delay old or qmgr_commit_batch_limit are pending (and when stopping); qmgr
logs `removed` after the commit. Mail delivered within one such window goes from incoming to
deleted without being written as active; slower mail shows as active from the next commit.
A final status is thus in the log before the queue forgets the recipient; a kill -9 at any
point leaves mail queued in incoming, active or deferred (delivered again at worst), never
lost, and a notice is queued in the transaction that records the result it reports
(mta.bounce.notices: bounces, NOTIFY=SUCCESS, delay warnings after delay_warning_time,
resource and software problems for notify_classes; docs/bounces.md).
Queue transactions run in one dedicated thread (mta.util.batchthread) so the loop keeps
dispatching while LMDB syncs; a cycle's outcome comes back with one loop wake-up;
the queue handle skips the meta-page fsync (QueueSettings.metasync), since a crash that
undoes qmgr's last commit only means mail taken again or delivered again.

Deferrals: agent-reported deferrals retry after a backoff that doubles per attempt between
minimal_backoff_time and maximal_backoff_time; a request whose agent died gets
delivery_agent_crash_retry_time; an agent that cannot be reached suspends its transport
for transport_retry_time ("4.3.0 mail transport unavailable"); mail for a dead destination
is deferred ("delivery temporarily suspended: ...") until minimal_backoff_time has passed or
the queue is flushed, which also ends a transport's suspension. Deferred mail older than
maximal_queue_lifetime (bounce_queue_lifetime for null-sender mail) is returned to the sender.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from mta.bounce.notices import (
    SOFTWARE_PROBLEMS,
    Notices,
    NoticeSettings,
    ReportedResult,
    agent_problem,
    delay_due,
    delay_notices,
    needs_notice,
    result_notices,
)
from mta.proto.delivery import (
    DeliveryResult,
    FrameDecoder,
    Goodbye,
    Outcome,
    ProtocolError,
    encode_request_fields,
)
from mta.proto.logline import status_line
from mta.qmgr.admission import Admission, IntakePlan, interleave
from mta.qmgr.scheduler import Destination, Feedback, Scheduler, split_requests
from mta.qmgr.settings import QmgrSettings
from mta.queue import (
    MailQueue,
    MessageLimitError,
    PreparedMessage,
    QueuedMessage,
    QueueError,
    QueueName,
    QueueTransaction,
    RecipientResult,
    RecipientState,
    RecipientStatus,
    UnknownQueueIdError,
)
from mta.util import maillog
from mta.util.batchthread import BatchThread
from mta.util.files import replace_file
from mta.util.trigger import FLUSH_DEFERRED, TriggerReceiver, trigger_path

log = logging.getLogger("mta.qmgr")

STATS_NAME = "qmgr.stats"
STATS_INTERVAL = 1.0
TIMER_GRANULARITY = 0.5
SHUTDOWN_GRACE = 10.0
"""How long a stopping qmgr waits for requests in flight before leaving them to recovery."""
COMMIT_RETRY_DELAY = 1.0


@dataclass(slots=True, eq=False)
class ActiveMessage:
    message: QueuedMessage
    active_time: float
    outstanding: int = 0


@dataclass(slots=True, eq=False)
class Job:
    entry: ActiveMessage
    transport: str
    nexthop: str
    recipients: tuple[RecipientState, ...]


@dataclass(frozen=True, slots=True)
class PendingChanges:
    """qmgr's queue changes not yet committed; one write transaction commits them all."""

    results: list[RecipientResult]
    settled: list[ActiveMessage]
    taken: list[str]
    """Ids taken by a read-only intake: still in incoming or deferred on disk."""
    since: float
    """loop.time() of the oldest change."""


@dataclass(frozen=True, slots=True)
class Committed:
    """What one commit of qmgr did."""

    deleted: list[str]
    notices: list[tuple[str, str]]
    """(queue id, what was done about notices: "sender non-delivery notification: ID", ...)"""


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """What one cycle in the queue thread did: its commit, then its intake."""

    committed: Committed | None
    """None when the cycle had nothing to commit or its commit failed."""
    taken: list[QueuedMessage]
    error: Exception | None
    """Why the commit (then nothing was done) or the intake failed."""


@dataclass(frozen=True, slots=True)
class CycleJob:
    """What one cycle hands the queue thread: changes to commit (or None), then an intake."""

    changes: PendingChanges | None
    limit: int
    deferred: bool
    flush: bool
    plan: IntakePlan | None = None
    """The intake's share of due deferred mail and admission order (None: no intake)."""


@dataclass(slots=True)
class Counters:
    received: int = 0
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    expired: int = 0
    changed: bool = field(default=True)


class AgentConnection(asyncio.Protocol):
    """qmgr's end of one connection to a delivery agent."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.decoder = FrameDecoder()
        self.in_flight: dict[int, tuple[Destination[Job], Job]] = {}
        self.transport: asyncio.Transport | None = None
        self._next_id = 0
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, destination: Destination[Job], job: Job) -> None:
        self._next_id += 1
        entry = job.entry
        message = entry.message
        frame = encode_request_fields(
            self._next_id,
            message.queue_id,
            job.nexthop,
            message.sender,
            message.arrival_time,
            entry.active_time,
            [
                (
                    r.index,
                    int(r.recipient.notify),
                    r.recipient.address,
                    r.recipient.orig_address,
                    r.recipient.orcpt,
                )
                for r in job.recipients
            ],
        )
        self.in_flight[self._next_id] = (destination, job)
        if not self._out:
            asyncio.get_running_loop().call_soon(self._write_out)
        self._out.append(frame)

    def _write_out(self) -> None:
        if self.transport is not None and self._out:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as error:
            log.warning("warning: malformed answer from %s agent: %s", self.client.name, error)
            if self.transport is not None:
                self.transport.abort()
            return
        qmgr = self.client.qmgr
        for frame in frames:
            if isinstance(frame, DeliveryResult):
                sent = self.in_flight.pop(frame.request_id, None)
                if sent is None:
                    log.warning("warning: %s agent answered unknown request", self.client.name)
                    continue
                qmgr.on_result(sent[0], sent[1], frame)
            elif isinstance(frame, Goodbye):
                self._retire(frame.last_request_id)
            else:
                log.warning("warning: %s agent sent a request", self.client.name)
                if self.transport is not None:
                    self.transport.abort()
                return

    def _retire(self, last_request_id: int) -> None:
        """The agent retired: requests it never read go to a new connection at once."""
        if self.client.connection is self:
            self.client.connection = None
        unread = [key for key in self.in_flight if key > last_request_id]
        for key in unread:
            destination, job = self.in_flight.pop(key)
            self.client.submit(destination, job)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.client.connection is self:
            self.client.connection = None
        in_flight, self.in_flight = self.in_flight, {}
        for destination, job in in_flight.values():
            self.client.qmgr.defer_job(
                destination,
                job,
                "delivery agent crashed",
                self.client.qmgr.settings.agent_crash_retry,
            )


class AgentClient:
    """The kept-open connection to one transport's agent socket."""

    def __init__(self, qmgr: Qmgr, name: str) -> None:
        self.qmgr = qmgr
        self.name = name
        self.path = qmgr.settings.queue_directory / "private" / name
        self.connection: AgentConnection | None = None
        self.unavailable_until = 0.0
        self._backlog: list[tuple[Destination[Job], Job]] = []
        self._connecting: asyncio.Future[None] | None = None

    def submit(self, destination: Destination[Job], job: Job) -> None:
        if self.connection is not None:
            self.connection.send(destination, job)
            return
        if self.unavailable_until > time.time():
            self.qmgr.defer_job(
                destination, job, "mail transport unavailable", self.qmgr.settings.transport_retry
            )
            return
        self._backlog.append((destination, job))
        if not self._connecting:
            # Kept so the task is not garbage-collected while it connects.
            self._connecting = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_unix_connection(
                lambda: AgentConnection(self), str(self.path)
            )
        except OSError as error:
            log.warning("warning: connect to transport %s: %s", self.name, error.strerror)
            self.unavailable_until = time.time() + self.qmgr.settings.transport_retry
            backlog, self._backlog = self._backlog, []
            for destination, job in backlog:
                self.qmgr.defer_job(
                    destination,
                    job,
                    "mail transport unavailable",
                    self.qmgr.settings.transport_retry,
                )
            return
        finally:
            self._connecting = None
        self.connection = connection
        backlog, self._backlog = self._backlog, []
        for destination, job in backlog:
            connection.send(destination, job)

    def close(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.close()


class Qmgr:
    def __init__(self, settings: QmgrSettings, queue: MailQueue) -> None:
        self.settings = settings
        self.queue = queue
        self.scheduler: Scheduler[Job] = Scheduler(settings.policy, settings.recipient_active_limit)
        self.admission = Admission(
            settings.active_limit, settings.recipient_active_limit, settings.intake_batch
        )
        self._dispatching = False
        self._dispatch_again = False
        self._start_timer: asyncio.TimerHandle | None = None
        self._start_time = math.inf
        """When _start_timer fires: the end of the first rate delay that holds a job back."""
        self.counters = Counters()
        self.notices = NoticeSettings.from_settings(settings.source)
        self.active: dict[str, ActiveMessage] = {}
        self._recipient_limits: dict[str, int] = {}
        self._clients: dict[str, AgentClient] = {}
        self._results: list[RecipientResult] = []
        self._settled: list[ActiveMessage] = []
        self._taken: list[str] = []
        """Ids taken since the last commit, to be marked active in the next one."""
        self._pending_since: float | None = None
        self._commit_timer: asyncio.TimerHandle | None = None
        self._thread = BatchThread[CycleJob, CycleOutcome](
            "qmgr-queue", self._run_cycle, self._cycle_done, max_batch=1
        )
        self._cycling = False
        """A cycle is in the queue thread; anything new waits for the next one."""
        self._wake_scheduled = False
        self._closed: asyncio.Future[None] | None = None
        self._want_incoming = True
        self._want_deferred = True
        self._want_flush = False
        self._stopping = False
        self._closing = False
        self._next_due = math.inf

    # -- the process ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        # Before any other work: blocking the loop here costs nothing.
        self.queue.clear_stale_readers()
        self.queue.recover_active()
        self._closed = loop.create_future()
        receiver = TriggerReceiver(trigger_path(self.settings.queue_directory))
        loop.add_reader(receiver.fileno(), self._on_trigger, receiver)
        tasks = [
            asyncio.ensure_future(self._timer()),
            asyncio.ensure_future(self._stats_writer()),
        ]
        self._wake()
        try:
            await stop.wait()
            self._stopping = True
            deadline = time.monotonic() + SHUTDOWN_GRACE
            while any(e.outstanding for e in self.active.values()):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
            self._closing = True
            self._wake()
            await self._closed
        finally:
            loop.remove_reader(receiver.fileno())
            receiver.close()
            for task in tasks:
                task.cancel()
            for client in self._clients.values():
                client.close()
            self._write_stats()
            await self._thread.close()

    def _on_trigger(self, receiver: TriggerReceiver) -> None:
        requests = receiver.drain()
        self._want_incoming = True
        if FLUSH_DEFERRED in requests:
            self._want_flush = True
            # As Postfix's flush: dead destinations and transports get another chance.
            self.scheduler.revive_all()
            for client in self._clients.values():
                client.unavailable_until = 0.0
        self._wake()

    async def _timer(self) -> None:
        next_scan = time.time() + self.settings.queue_run_delay
        while True:
            await asyncio.sleep(TIMER_GRANULARITY)
            now = time.time()
            if now >= next_scan:
                next_scan = now + self.settings.queue_run_delay
                self._want_incoming = self._want_deferred = True
                self.scheduler.forget_idle(now)
                self._wake()
            if now >= self._next_due:
                self._next_due = math.inf
                self._want_deferred = True
                self._wake()

    def _wake(self) -> None:
        """Ask for a cycle; every wake-up of one loop iteration is served by one cycle."""
        if not self._wake_scheduled:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_cycle)

    def _next_cycle(self) -> None:
        """Start a queue cycle if one is needed and none is running.

        Intake reads the queue without writing, so new mail is dispatched at once. Changes
        (mail taken, results, notices, removals) gather in memory and are committed in one
        write transaction when the oldest is qmgr_commit_delay old, when
        qmgr_commit_batch_limit are pending, or when stopping: few commits hold LMDB's one
        writer lock, for which smtpd's commits (each standing behind a 250) wait.
        """
        self._wake_scheduled = False
        if self._cycling:
            return  # _cycle_done looks again
        pending = self._pending_count() > 0
        if pending and self._pending_since is None:
            self._pending_since = asyncio.get_running_loop().time()
        if self._closing:
            if pending:
                self._start_cycle(True, 0)
            elif self._closed is not None and not self._closed.done():
                self._closed.set_result(None)
            return
        wanted = self._want_incoming or self._want_deferred or self._want_flush
        plan = None
        if wanted and not self._stopping:
            # Room in the active queue (mta.qmgr.admission), done messages counting as gone.
            deferred = self._want_deferred or self._want_flush
            plan = self.admission.plan(len(self.active), len(self._settled), deferred)
        limit = plan.limit if plan is not None else 0
        # Flushing deferred mail is a write: it goes with a commit.
        commit = (self._want_flush and limit > 0) or (pending and self._commit_due())
        if commit or limit > 0:
            self._start_cycle(commit, limit, plan)
        if pending and not commit:
            self._commit_later()

    def _pending_count(self) -> int:
        return len(self._results) + len(self._settled) + len(self._taken)

    def _commit_due(self) -> bool:
        assert self._pending_since is not None
        age = asyncio.get_running_loop().time() - self._pending_since
        return (
            age >= self.settings.commit_delay or self._pending_count() >= self.settings.commit_batch
        )

    def _commit_later(self) -> None:
        """Wake when the oldest pending change is qmgr_commit_delay old."""
        if self._commit_timer is None:
            assert self._pending_since is not None
            self._commit_timer = asyncio.get_running_loop().call_at(
                self._pending_since + self.settings.commit_delay, self._commit_timer_fired
            )

    def _commit_timer_fired(self) -> None:
        self._commit_timer = None
        self._wake()

    def _start_cycle(self, commit: bool, limit: int, plan: IntakePlan | None = None) -> None:
        """Commit the pending changes (if commit), then take up to limit messages."""
        changes = None
        if commit:
            changes = PendingChanges(
                self._results,
                self._settled,
                self._taken,
                self._pending_since or asyncio.get_running_loop().time(),
            )
            self._results, self._settled, self._taken = [], [], []
            self._pending_since = None
            if self._commit_timer is not None:
                self._commit_timer.cancel()
                self._commit_timer = None
        flush = self._want_flush and limit > 0
        deferred = (self._want_deferred or flush) and limit > 0
        if limit > 0:
            self._want_incoming = self._want_deferred = self._want_flush = False
        self._cycling = True
        self._thread.put(CycleJob(changes, limit, deferred, flush, plan))

    def _run_cycle(self, jobs: list[CycleJob]) -> CycleOutcome:
        """In the queue thread: one cycle (the batch is one job); failures become outcomes."""
        (job,) = jobs
        committed = None
        changes = job.changes
        if changes is not None:
            try:
                committed = self.queue.transaction(
                    lambda txn: self._commit(txn, changes, job.flush)
                )
            except Exception as error:  # QueueError, or a bug: keep the changes for a retry
                return CycleOutcome(None, [], error)
        if job.limit <= 0:
            return CycleOutcome(committed, [], None)
        due_before = time.time() if job.deferred else None
        try:
            # self.active is read from this thread: its keys change only in _cycle_done, in
            # the loop, and never while a cycle runs (one at a time). It holds every message
            # qmgr works on or has results pending for, which the queue may still show in
            # incoming or deferred.
            due_first = job.plan.due_first if job.plan is not None else None
            intake = self.queue.read_intake(job.limit, self.active, due_before, due_first)
        except Exception as error:
            return CycleOutcome(committed, [], error)
        # Deferred and new mail in turn, so what does not fit is left from both alike.
        deferred_first = job.plan is not None and job.plan.deferred_first
        taken = interleave(intake.due, intake.incoming, deferred_first)
        return CycleOutcome(committed, taken, None)

    def _cycle_done(self, jobs: list[CycleJob], cycle: CycleOutcome) -> None:
        """In the loop: log and act on what one cycle did, then look for the next."""
        (job,) = jobs
        self._cycling = False
        if job.changes is not None and cycle.committed is not None:
            self._committed(job.changes, cycle.committed)
        if cycle.error is not None:
            self._cycle_failed(job, cycle)
            return
        limit = job.limit
        if limit > 0:
            taken = cycle.taken
            admitted = self.admission.admit([len(m.recipients) for m in taken])
            if len(taken) >= limit or admitted < len(taken):
                # More mail than one intake takes, or than fits: what was not admitted stays
                # in its queue for a later intake, from both queues again.
                self._want_incoming = True
                self._want_deferred = self._want_deferred or job.deferred
                taken = taken[:admitted]
            self.counters.received += sum(m.queue_name == QueueName.INCOMING for m in taken)
            self.counters.changed = True
            now = time.time()
            for message in taken:
                self._taken.append(message.queue_id)
                self._activate(message, now)
            self._dispatch()
        self._next_cycle()

    def _committed(self, changes: PendingChanges, committed: Committed) -> None:
        for queue_id, text in committed.notices:
            log.info("%s: %s", queue_id, text)
        for queue_id in committed.deleted:
            maillog.line(f"{queue_id}: removed", "mta.qmgr")
        # Only now may a scan take these again (or find them gone).
        for entry in changes.settled:
            if self.active.pop(entry.message.queue_id, None) is not None:
                self.admission.leave(len(entry.message.recipients))
        # A scan for due mail while these deferrals were pending skipped them: look again
        # when they are due.
        for result in changes.results:
            if result.status is RecipientStatus.DEFERRED:
                self._next_due = min(self._next_due, result.next_try)
        if committed.notices:
            self._want_incoming = True

    def _cycle_failed(self, job: CycleJob, cycle: CycleOutcome) -> None:
        error = cycle.error
        if isinstance(error, QueueError):
            log.warning("warning: cannot update the queue: %s", error)
        else:
            log.error("error: queue cycle failed: %r", error)
        if self._closing:
            # Stopping: what is not recorded is delivered again after the restart.
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)
            return
        changes = job.changes
        if changes is not None and cycle.committed is None:
            self._results[:0] = changes.results
            self._settled[:0] = changes.settled
            self._taken[:0] = changes.taken
            self._pending_since = changes.since
        if job.limit > 0:
            self._want_incoming = True
            self._want_deferred = self._want_deferred or job.deferred
            self._want_flush = self._want_flush or job.flush
        asyncio.get_running_loop().call_later(COMMIT_RETRY_DELAY, self._wake)

    def _commit(self, txn: QueueTransaction, changes: PendingChanges, flush: bool) -> Committed:
        """In the queue thread, inside one write transaction: all the pending changes.

        Record results (deferred mail gets its next try), queue notices for bounced
        recipients, delete finished messages, mark mail still being worked on active. Mail
        taken and finished since the last commit goes from incoming to deleted without ever
        being written as active. May run twice (after the map grew), so it changes nothing
        but the queue.
        """
        results, settled = changes.results, changes.settled
        finished = set(txn.record_results(results)) if results else set()
        done = [
            e
            for e in settled
            if e.message.queue_id in finished or all(r.status.final for r in e.message.recipients)
        ]
        notices = self._queue_notices(txn, results, settled, {e.message.queue_id for e in done})
        deleted = txn.delete([entry.message.queue_id for entry in done]) if done else []
        settled_ids = {entry.message.queue_id for entry in settled}
        working = [queue_id for queue_id in changes.taken if queue_id not in settled_ids]
        if working:
            # Only from where the intake found them: mail put on hold meanwhile stays there.
            txn.move(working, QueueName.ACTIVE, only_from=(QueueName.INCOMING, QueueName.DEFERRED))
        if flush:
            txn.flush_deferred(time.time())
        return Committed(deleted, notices)

    def _queue_notices(
        self,
        txn: QueueTransaction,
        results: list[RecipientResult],
        settled: list[ActiveMessage],
        done: set[str],
    ) -> list[tuple[str, str]]:
        """Queue, in this transaction, the notices that the results recorded in it and the
        settled messages call for (mta.bounce.notices: failures, successes, problems, delay
        warnings), and mark the messages that must not get one again; return (queue id, log
        text) pairs. A notice over the queue's limits is logged and left out, never allowed
        to fail the commit."""
        now = time.time()
        wanted: dict[str, list[RecipientResult]] = {}
        for result in results:
            if needs_notice(result):
                wanted.setdefault(result.queue_id, []).append(result)
        delayed = [
            entry.message.queue_id
            for entry in settled
            if entry.message.queue_id not in done and delay_due(entry.message, self.notices, now)
        ]
        if not wanted and not delayed:
            return []

        def content(queue_id: str) -> Callable[[], bytes]:
            def read() -> bytes:
                try:
                    return txn.content(queue_id)
                except UnknownQueueIdError:
                    return b""

            return read

        made: list[tuple[str, Notices]] = []
        for queue_id, its_results in wanted.items():
            message = txn.get(queue_id)
            if message is not None:
                notices = result_notices(message, its_results, content(queue_id), self.notices, now)
                made.append((queue_id, notices))
        for queue_id in delayed:
            message = txn.get(queue_id)
            if message is not None:
                made.append(
                    (queue_id, delay_notices(message, content(queue_id), self.notices, now))
                )
        lines: list[tuple[str, str]] = []
        batch: list[tuple[str, str, PreparedMessage]] = []
        for queue_id, notices in made:
            lines += [(queue_id, remark) for remark in notices.remarks]
            for notice in notices.notices:
                try:
                    batch.append((queue_id, notice.what, self.queue.prepare(notice.message)))
                except MessageLimitError as error:
                    lines.append((queue_id, f"{notice.what} not sent: {error}"))
            if queue_id not in done:
                for name, value in notices.marks.items():
                    txn.set_extra(queue_id, name, value)
        if batch:
            new_ids = txn.enqueue_prepared([prepared for _, _, prepared in batch])
            lines += [
                (queue_id, f"{what}: {new_id}")
                for (queue_id, what, _), new_id in zip(batch, new_ids, strict=True)
            ]
        return lines

    # -- intake --------------------------------------------------------------------------------

    def _activate(self, message: QueuedMessage, now: float) -> None:
        entry = ActiveMessage(message, now)
        self.active[message.queue_id] = entry
        maillog.line(
            f"{message.queue_id}: from=<{message.sender}>, size={message.size}, "
            f"nrcpt={len(message.recipients)} (queue active)",
            "mta.qmgr",
        )
        pending = [r for r in message.recipients if not r.status.final]
        if not pending:
            self._settle(entry)
            return
        if self._expired(message, now):
            self._expire(entry, pending)
            return
        resolve = self.settings.resolver.router(message)
        routed = []
        for recipient in pending:
            transport, nexthop = resolve(recipient.recipient.address)
            routed.append((transport, nexthop, recipient.recipient.address, recipient))
        for request in split_requests(routed, self._recipient_limit):
            job = Job(entry, request.transport, request.nexthop, request.recipients)
            entry.outstanding += 1
            if not self.scheduler.add(request.transport, request.destination, job, now):
                destination = self.scheduler.destination(request.transport, request.destination)
                self._suspend(job, destination)

    def _recipient_limit(self, transport: str) -> int:
        limit = self._recipient_limits.get(transport)
        if limit is None:
            limit = self._recipient_limits[transport] = self.settings.recipient_limit(transport)
        return limit

    def _expired(self, message: QueuedMessage, now: float) -> bool:
        if message.forced_expire:
            return True
        lifetime = (
            self.settings.maximal_queue_lifetime
            if message.sender
            else self.settings.bounce_queue_lifetime
        )
        tried = any(r.attempts for r in message.recipients)
        return tried and now - message.arrival_time >= lifetime

    def _expire(self, entry: ActiveMessage, pending: list[RecipientState]) -> None:
        message = entry.message
        log.info(
            "%s: from=<%s>, status=expired, returned to sender", message.queue_id, message.sender
        )
        for recipient in pending:
            self._results.append(
                RecipientResult(
                    message.queue_id,
                    recipient.index,
                    RecipientStatus.BOUNCED,
                    recipient.dsn if recipient.dsn.startswith("4.") else "4.4.7",
                    recipient.reason or "delivery time expired",
                )
            )
        self.counters.expired += 1
        self.counters.bounced += len(pending)
        self._settle(entry)

    # -- dispatch and results ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand every job the scheduler lets start to its agent. A submit may defer a job at
        once (transport unavailable) and so call here again: that call only asks the outer
        one to look again, so a long queue for a dead transport is a loop, not a recursion."""
        if self._dispatching:
            self._dispatch_again = True
            return
        self._dispatching = True
        try:
            self._dispatch_again = True
            while self._dispatch_again:
                self._dispatch_again = False
                for destination, job in self.scheduler.ready(time.time()):
                    client = self._clients.get(job.transport)
                    if client is None:
                        client = self._clients[job.transport] = AgentClient(self, job.transport)
                    client.submit(destination, job)
        finally:
            self._dispatching = False
        self._dispatch_later(self.scheduler.next_wakeup(time.time()))

    def _dispatch_later(self, when: float | None) -> None:
        """Dispatch again when the first rate delay that holds a job back is over."""
        if when is None or when >= self._start_time:
            return
        if self._start_timer is not None:
            self._start_timer.cancel()
        self._start_time = when
        self._start_timer = asyncio.get_running_loop().call_later(
            max(0.0, when - time.time()), self._start_timer_fired
        )

    def _start_timer_fired(self) -> None:
        self._start_timer = None
        self._start_time = math.inf
        self._dispatch()

    def on_result(self, destination: Destination[Job], job: Job, result: DeliveryResult) -> None:
        now = time.time()
        outcomes = {outcome.index: outcome for outcome in result.outcomes}
        queue_id = job.entry.message.queue_id
        unreported = []
        for recipient in job.recipients:
            outcome = outcomes.get(recipient.index)
            if outcome is None:
                unreported.append(recipient)
                continue
            if outcome.outcome is Outcome.SENT:
                status, next_try = RecipientStatus.DELIVERED, 0.0
                self.counters.delivered += 1
            elif outcome.outcome is Outcome.BOUNCED:
                status, next_try = RecipientStatus.BOUNCED, 0.0
                self.counters.bounced += 1
            else:
                status = RecipientStatus.DEFERRED
                next_try = now + self.settings.backoff(recipient.attempts)
                self._next_due = min(self._next_due, next_try)
                self.counters.deferred += 1
            self._results.append(
                ReportedResult(
                    queue_id,
                    recipient.index,
                    status,
                    outcome.dsn,
                    outcome.text,
                    next_try,
                    relay=outcome.relay,
                    handoff=outcome.handoff,
                    notify=recipient.recipient.notify,
                    problem=agent_problem(status, outcome.dsn, outcome.relay),
                )
            )
        self.counters.changed = True
        for recipient in unreported:
            self._defer_recipient(
                job,
                recipient,
                "delivery agent did not report",
                now,
                self.settings.agent_crash_retry,
            )
        # Feedback on the destination, as Postfix's qmgr takes it: a site failure of every
        # recipient (the destination could not be reached) is negative; a server that
        # answered is positive, even if it deferred every recipient (greylisting); nothing
        # reported at all says nothing.
        site_failures = [o for o in result.outcomes if o.site_failure]
        if site_failures and len(site_failures) == len(result.outcomes):
            feedback = Feedback.FAILURE
        else:
            feedback = Feedback.SUCCESS if result.outcomes else Feedback.NONE
        reason, dsn = (site_failures[0].text, site_failures[0].dsn) if site_failures else ("", "")
        for waiting in self.scheduler.completed(destination, feedback, now, reason, dsn):
            self._suspend(waiting, destination)
        self._job_done(job)
        self._dispatch()

    def defer_job(self, destination: Destination[Job], job: Job, reason: str, retry: float) -> None:
        """A request that failed as a whole (agent gone, transport unavailable)."""
        now = time.time()
        # Our trouble, not the destination's: no feedback on its window.
        self.scheduler.completed(destination, Feedback.NONE, now)
        self._defer(job, reason, now + retry)
        self._dispatch()

    def _suspend(self, job: Job, destination: Destination[Job]) -> None:
        """Defer a job of a dead destination until it may be tried again, or later if the
        recipient's own backoff says so (Postfix: "delivery temporarily suspended")."""
        now = time.time()
        reason = "delivery temporarily suspended"
        if destination.reason:
            reason = f"{reason}: {destination.reason}"
        for recipient in job.recipients:
            retry = max(destination.dead_until - now, self.settings.backoff(recipient.attempts))
            self._defer_recipient(job, recipient, reason, now, retry, destination.dsn or "4.3.0")
        self._job_done(job)

    def _defer(self, job: Job, reason: str, next_try: float) -> None:
        now = time.time()
        for recipient in job.recipients:
            self._defer_recipient(job, recipient, reason, now, max(0.0, next_try - now))
        self._job_done(job)

    def _defer_recipient(
        self,
        job: Job,
        recipient: RecipientState,
        reason: str,
        now: float,
        retry: float,
        dsn: str = "4.3.0",
    ) -> None:
        entry = job.entry
        message = entry.message
        log.info(
            status_line(
                message.queue_id,
                recipient.recipient.address,
                recipient.recipient.orig_address,
                "none",
                (
                    max(0.0, entry.active_time - message.arrival_time),
                    max(0.0, now - entry.active_time),
                    0.0,
                    0.0,
                ),
                dsn,
                "deferred",
                reason,
            )
        )
        self._next_due = min(self._next_due, now + retry)
        self.counters.deferred += 1
        self.counters.changed = True
        self._results.append(
            ReportedResult(
                message.queue_id,
                recipient.index,
                RecipientStatus.DEFERRED,
                dsn,
                reason,
                now + retry,
                notify=recipient.recipient.notify,
                problem=SOFTWARE_PROBLEMS.get(reason),
            )
        )

    def _job_done(self, job: Job) -> None:
        entry = job.entry
        entry.outstanding -= 1
        if entry.outstanding == 0:
            self._settle(entry)
        else:
            self._wake()  # its results are pending: start the commit clock

    def _settle(self, entry: ActiveMessage) -> None:
        self._settled.append(entry)
        self._wake()

    # -- stats ---------------------------------------------------------------------------------

    async def _stats_writer(self) -> None:
        while True:
            if self.counters.changed:
                self._write_stats()
            await asyncio.sleep(STATS_INTERVAL)

    def _write_stats(self) -> None:
        counters = self.counters
        counters.changed = False
        data = {
            "time": time.time(),
            "pid": os.getpid(),
            "received": counters.received,
            "delivered": counters.delivered,
            "deferred": counters.deferred,
            "bounced": counters.bounced,
            "expired": counters.expired,
            "active": len(self.active),
        }
        directory = self.settings.data_directory
        path = directory / STATS_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            replace_file(path, json.dumps(data).encode() + b"\n", mode=0o644)
        except OSError as error:
            log.warning("warning: cannot write %s: %s", path, error.strerror)
