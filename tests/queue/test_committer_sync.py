"""smtpd's Committer on a queue opened with metasync off: a message is acknowledged only
after an fsync that followed its commit (the next batch's commit, or MailQueue.sync()), so
under load a commit holds LMDB's writer lock for one fsync instead of two."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from mta.queue import Committer, MailQueue, Message, QueueSettings
from mta.queue.store import PreparedMessage


class RecordingQueue(MailQueue):
    """A real queue that notes, in order, each commit's end and each explicit sync."""

    def __init__(self, settings: QueueSettings) -> None:
        super().__init__(settings)
        self.events: list[tuple[str, tuple[str, ...]]] = []
        self._lock = threading.Lock()

    def enqueue_prepared(self, batch: Sequence[PreparedMessage]) -> list[str]:
        ids = super().enqueue_prepared(batch)
        with self._lock:
            self.events.append(("commit", tuple(ids)))
        return ids

    def sync(self) -> None:
        super().sync()
        with self._lock:
            self.events.append(("sync", ()))


def vouched_for(events: list[tuple[str, tuple[str, ...]]], acknowledged: list[str]) -> bool:
    """Whether each acknowledged id was committed and then followed by a commit or a sync
    before it was acknowledged (events and acknowledgements in the order they happened)."""
    committed_at = {qid: index for index, (_, ids) in enumerate(events) for qid in ids}
    return all(
        queue_id in committed_at and committed_at[queue_id] < len(events) - 1
        for queue_id in acknowledged
    )


def run_producers(
    queue: MailQueue, make: Callable[..., Message], count: int
) -> tuple[list[str], list[int], int]:
    """count concurrent submissions; their ids, the events seen at each acknowledgement."""

    async def run() -> tuple[list[str], list[int], int]:
        committer = Committer(queue, max_batch=8)
        seen: list[int] = []

        async def one(serial: int) -> str:
            queue_id = await committer.submit(make(serial))
            assert isinstance(queue, RecordingQueue)
            seen.append(len(queue.events))
            return queue_id

        ids = await asyncio.gather(*(one(serial) for serial in range(count)))
        await committer.close()
        return list(ids), seen, committer.commits

    return asyncio.run(run())


def test_every_acknowledged_message_had_an_fsync_after_its_commit(
    tmp_path: Path, make: Callable[..., Message]
) -> None:
    queue = RecordingQueue(QueueSettings(tmp_path, metasync=False))
    ids, seen, commits = run_producers(queue, make, 60)
    events = queue.events
    for queue_id, at_acknowledgement in zip(ids, seen, strict=True):
        assert vouched_for(events[:at_acknowledgement], [queue_id]), (queue_id, events)
    assert [queue.content(queue_id) for queue_id in ids] == [make(n).content for n in range(60)]
    # Batches that found the next one waiting were vouched for by its commit: fewer explicit
    # syncs than commits.
    syncs = sum(1 for kind, _ in events if kind == "sync")
    assert commits > 1 and 1 <= syncs < commits
    queue.close()


def test_a_lone_commit_is_synced_before_it_is_acknowledged(
    tmp_path: Path, make: Callable[..., Message]
) -> None:
    queue = RecordingQueue(QueueSettings(tmp_path, metasync=False))

    async def one_at_a_time() -> list[str]:
        committer = Committer(queue)
        ids = [await committer.submit(make(1)), await committer.submit(make(2), inline=True)]
        await committer.close()
        return ids

    ids = asyncio.run(one_at_a_time())
    assert queue.events == [
        ("commit", (ids[0],)),
        ("sync", ()),
        ("commit", (ids[1],)),
        ("sync", ()),
    ]
    queue.close()


def test_with_metasync_on_nothing_extra_is_synced(
    tmp_path: Path, make: Callable[..., Message]
) -> None:
    queue = RecordingQueue(QueueSettings(tmp_path))
    ids, _seen, _commits = run_producers(queue, make, 20)
    assert len(ids) == 20
    assert all(kind == "commit" for kind, _ in queue.events)
    queue.close()
