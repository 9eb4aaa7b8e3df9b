"""A child process for the crash and concurrency tests: enqueue through the committer.

Usage: python -m tests.queue.queue_child QUEUE_DIR FIRST_SERIAL COUNT PRODUCERS
Submits messages make_message(FIRST_SERIAL + n) for n < COUNT (COUNT 0 means forever) from
PRODUCERS concurrent asyncio producers, and prints "serial queue_id" on stdout, flushed, only
after the committer says the message is durable. Exits 0 when done.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from conftest import make_message

from mta.queue import Committer, MailQueue, QueueSettings


async def produce(queue_dir: Path, first: int, count: int, producers: int) -> None:
    queue = MailQueue(QueueSettings(queue_dir, map_size=1 << 20))
    committer = Committer(queue)
    serials = itertools.count(first) if count == 0 else iter(range(first, first + count))

    async def producer() -> None:
        for serial in serials:
            queue_id = await committer.submit(make_message(serial))
            sys.stdout.write(f"{serial} {queue_id}\n")
            sys.stdout.flush()

    await asyncio.gather(*(producer() for _ in range(producers)))
    await committer.close()
    queue.close()


if __name__ == "__main__":
    directory, first_text, count_text, producers_text = sys.argv[1:5]
    asyncio.run(produce(Path(directory), int(first_text), int(count_text), int(producers_text)))
