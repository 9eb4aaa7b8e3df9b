"""The smtpd test harness: a worker serving on 127.0.0.1 in a thread, and raw-socket readers.

The worker runs mta.smtpd.worker.serve on its own event loop (uvloop) in a background thread,
so tests can use blocking clients (smtplib, raw sockets) and read the very queue the worker
writes (py-lmdb allows one environment handle per process).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import uvloop

from mta.config.maincf import load_settings
from mta.queue import MailQueue, QueuedMessage
from mta.smtpd.worker import listening_sockets, queue_settings, serve


class RunningServer:
    """A worker serving on 127.0.0.1:port until stop()."""

    def __init__(self, directory: Path, main_cf: str) -> None:
        self.directory = directory
        (directory / "main.cf").write_text(f"queue_directory = {directory}/q\n{main_cf}")
        self.settings = load_settings(directory)
        self.queue = MailQueue(queue_settings(self.settings))
        self._sockets = listening_sockets(("127.0.0.1", 0), 1)
        self.port: int = self._sockets[0].getsockname()[1]
        self._loop = uvloop.new_event_loop()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(
                serve(self.settings, self._sockets, self.queue, self._stop)
            )
        except BaseException as error:
            self._error = error
        finally:
            self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)
        self.queue.close()
        if self._error is not None:
            raise self._error

    def messages(self) -> list[QueuedMessage]:
        return list(self.queue.scan())

    def content(self, queue_id: str) -> bytes:
        return self.queue.content(queue_id)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


StartServer = Callable[..., RunningServer]


def read_reply(sock: socket.socket) -> bytes:
    """Read until the buffer ends with a complete final reply line ("NNN text\\r\\n")."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if data.endswith(b"\r\n") and len(lines) >= 2 and lines[-2][3:4] == b" ":
            return data


def read_replies(sock: socket.socket, count: int) -> bytes:
    """Read until `count` final reply lines have arrived (or the server closed)."""
    data = b""
    while sum(1 for line in data.split(b"\r\n") if line[3:4] == b" ") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


async def send_messages(port: int, client: int, count: int) -> list[str]:
    """One pipelining session sending `count` messages; returns the queue ids in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def replies(number: int) -> list[bytes]:
        lines: list[bytes] = []
        while number:
            line = await reader.readline()
            assert line, "server closed the connection"
            if line[3:4] == b" ":
                lines.append(line)
                number -= 1
        return lines

    await replies(1)
    writer.write(b"EHLO load.example\r\n")
    await replies(1)
    queue_ids = []
    for serial in range(count):
        writer.write(
            b"MAIL FROM:<load%d@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n" % client
        )
        assert [line[:3] for line in await replies(3)] == [b"250", b"250", b"354"]
        writer.write(b"Subject: %d.%d\r\n\r\nbody\r\n.\r\n" % (client, serial))
        [queued] = await replies(1)
        assert queued.startswith(b"250 2.0.0 Ok: queued as "), queued
        queue_ids.append(queued.split()[-1].decode())
    writer.write(b"QUIT\r\n")
    await replies(1)
    writer.close()
    await writer.wait_closed()
    return queue_ids
