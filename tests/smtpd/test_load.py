"""Many concurrent sessions share group commits, and every message is queued exactly once."""

from __future__ import annotations

import asyncio

from .harness import RunningServer, send_messages

CLIENTS = 50
MESSAGES = 20


def test_concurrent_sessions_queue_every_message_exactly_once(server: RunningServer) -> None:
    async def load() -> list[list[str]]:
        return await asyncio.gather(
            *(send_messages(server.port, client, MESSAGES) for client in range(CLIENTS))
        )

    queue_ids = [queue_id for session in asyncio.run(load()) for queue_id in session]
    assert len(queue_ids) == len(set(queue_ids)) == CLIENTS * MESSAGES
    messages = server.messages()
    assert sorted(m.queue_id for m in messages) == sorted(queue_ids)
    subjects = set()
    for message in messages:
        content = server.content(message.queue_id)
        subjects.add(content[content.index(b"Subject: ") :])
    expected = {
        b"Subject: %d.%d\r\n\r\nbody\r\n" % (client, serial)
        for client in range(CLIENTS)
        for serial in range(MESSAGES)
    }
    assert subjects == expected
