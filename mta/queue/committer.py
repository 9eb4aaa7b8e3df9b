"""Group commit: many producers in one event loop share each durable queue transaction.

ARCHITECTURE.md "Group commit": smtpd sessions hand finished messages to their worker's one
Committer. While a commit is in flight, new messages wait; when it ends they all go into the
next single write transaction, and each producer gets its queue id only after that
transaction is durable (LMDB's commit fsyncs before it returns). One fsync thus serves many
messages, and no acknowledged message can be lost by a crash.

The transactions run in one dedicated commit thread (mta.util.batchthread), so the event loop
keeps serving sessions while LMDB writes and fsyncs (py-lmdb releases the GIL there); each
write transaction begins and ends in one thread, as LMDB requires. The thread takes whatever
is pending when it is free and hands a whole batch's outcomes back to the loop with one
call_soon_threadsafe: one loop wake-up per commit, not one executor future per message.
Several processes may commit to one environment at once; LMDB serialises their writers.

A lone producer (smtpd passes `inline=True` when its session is the worker's only one) gets
its commit in the calling thread when no other commit is waiting or in flight: with nobody to
share the fsync with, the hand-off to the commit thread and back (~150 µs of wake-ups and
GIL hand-overs) was a sixth of a message's time at one session (docs/performance.md). It
blocks the loop for one commit, which only that session was waiting for.

Limits: max_batch messages per transaction, max_waiting messages waiting for their commit
(queued or in the commit in flight); past max_waiting, submit fails at once with
QueueFullError rather than queueing without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mta.queue.errors import QueueError, QueueFullError
from mta.queue.message import Message
from mta.queue.store import MailQueue, PreparedMessage
from mta.util.batchthread import BatchThread

DEFAULT_MAX_BATCH = 512
DEFAULT_MAX_WAITING = 10_000

CommitOutcome = str | QueueError
"""A queue id, or the error that kept that message out of the queue."""

Submission = tuple[PreparedMessage, "asyncio.Future[str]"]


class Committer:
    """Batches concurrent submissions into single durable LMDB transactions."""

    def __init__(
        self,
        queue: MailQueue,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_waiting: int = DEFAULT_MAX_WAITING,
    ) -> None:
        if max_batch < 1 or max_waiting < 1:
            raise ValueError("max_batch and max_waiting must be at least 1")
        self._queue = queue
        self._max_waiting = max_waiting
        self._thread = BatchThread[Submission, list[CommitOutcome]](
            "mta-commit", self._run_batch, self._resolve, max_batch=max_batch
        )
        self._unresolved = 0
        """Submissions whose future is not yet resolved (touched by the loop thread only)."""
        self._closed = False
        self.commits = 0
        """Transactions committed so far (for tests, statistics and the benchmark)."""

    async def submit(self, message: Message, *, inline: bool = False) -> str:
        """Queue one message; return its queue id once the message is durable.

        With inline, and no other submission unresolved, the commit runs in this thread.

        Raises MessageLimitError if the message is over a limit, QueueFullError when the
        queue is full (smtpd answers 452 4.3.1), QueueError for other failures. If the caller
        is cancelled while waiting, the message may still be queued, as with a client that
        disconnects after the end of DATA.
        """
        if self._closed:
            raise QueueError("the committer is closed")
        if self._unresolved >= self._max_waiting:
            raise QueueFullError(f"{self._max_waiting} messages already waiting for a commit")
        prepared = self._queue.prepare(message)
        if inline and self._unresolved == 0:
            (outcome,) = self._commit_safely([prepared])
            if isinstance(outcome, QueueError):
                raise outcome
            return outcome
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._unresolved += 1
        self._thread.put((prepared, future))
        return await future

    async def close(self) -> None:
        """Finish the commits already asked for, then stop the commit thread."""
        self._closed = True
        await self._thread.close()

    def _run_batch(self, batch: list[Submission]) -> list[CommitOutcome]:
        """In the commit thread: commit one batch."""
        return self._commit_safely([prepared for prepared, _ in batch])

    def _commit_safely(self, batch: Sequence[PreparedMessage]) -> list[CommitOutcome]:
        """Commit one batch; a failure, even a bug, fails this batch only."""
        try:
            return self._commit(batch)
        except Exception as error:  # a bug or an LMDB failure
            failure = error if isinstance(error, QueueError) else QueueError(str(error))
            return [failure] * len(batch)

    def _resolve(self, batch: list[Submission], outcomes: list[CommitOutcome]) -> None:
        """In the loop: hand each producer of one batch its queue id or error."""
        self._unresolved -= len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the producer was cancelled
                continue
            if isinstance(outcome, QueueError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _commit(self, batch: Sequence[PreparedMessage]) -> list[CommitOutcome]:
        """One transaction for the batch, or one each if it is too big.

        When the whole batch does not fit under queue_max_size, the messages that do fit
        should still get in, so each is retried in a transaction of its own.
        """
        try:
            outcomes: list[CommitOutcome] = list(self._queue.enqueue_prepared(batch))
            self.commits += 1
            return outcomes
        except QueueFullError as error:
            if len(batch) == 1:
                return [error]
        outcomes = []
        for prepared in batch:
            try:
                outcomes.extend(self._queue.enqueue_prepared([prepared]))
                self.commits += 1
            except QueueError as error:
                outcomes.append(error)
        return outcomes
