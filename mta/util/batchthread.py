"""One dedicated thread that works through batches handed over by an event loop.

The event loop puts items in with put(); the thread takes whatever is waiting when it is free
(up to max_batch items), runs process(batch) outside the loop, and hands the outcome back
with one call_soon_threadsafe: one loop wake-up per batch, no executor work item, no
concurrent future chained to an asyncio future. Batches run one after another in the same
thread, so a caller whose work must stay in one thread (LMDB write transactions, growing the
map) gets that for free.

smtpd's Committer (a batch = the messages of one group commit) and qmgr (a batch = one queue
cycle) share it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 (an item)
R = TypeVar("R")


class BatchThread(Generic[I, R]):
    """process(batch) runs in the thread; deliver(batch, outcome) in the loop afterwards.

    process must not raise: it turns its failures into outcomes (an exception escaping it
    would end the thread and leave the batch undelivered).
    """

    def __init__(
        self,
        name: str,
        process: Callable[[list[I]], R],
        deliver: Callable[[list[I], R], None],
        *,
        max_batch: int = 0,
    ) -> None:
        self._name = name
        self._process = process
        self._deliver = deliver
        self._max_batch = max_batch
        self._pending: deque[I] = deque()
        self._condition = threading.Condition()
        """Guards _pending and _closed between the loop and the thread."""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def put(self, item: I) -> None:
        """From the loop: queue item for the next batch (starting the thread on first use)."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        with self._condition:
            self._pending.append(item)
            self._condition.notify()

    async def close(self) -> None:
        """Finish the batches already asked for, deliver their outcomes, stop the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        thread = self._thread
        if thread is not None:
            # Joined outside the loop, which must keep running to deliver the last outcomes
            # (they are scheduled before the join's own completion, so they come first).
            await asyncio.to_thread(thread.join)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        pending = self._pending
        while True:
            with self._condition:
                while not pending and not self._closed:
                    self._condition.wait()
                if not pending:
                    return  # closed, and everything asked for is done
                count = len(pending)
                if self._max_batch:
                    count = min(count, self._max_batch)
                batch = [pending.popleft() for _ in range(count)]
            outcome = self._process(batch)
            loop.call_soon_threadsafe(self._deliver, batch, outcome)
