"""Wake-up triggers: one-byte datagrams on a UNIX socket, like Postfix's qmgr triggers.

A sender (smtpd after a durable commit, `mta queue flush`) tells the receiver (qmgr) that
there is work, without waiting and without caring whether anyone listens: qmgr also scans the
queue on a timer, so a lost trigger only costs latency. Sending is one non-blocking sendto();
a missing socket (ENOENT), no receiver (ECONNREFUSED) or a full receive buffer (EAGAIN: the
receiver already has wake-ups pending) are ignored. Requests are single bytes, as in Postfix's
qmgr: SCAN_INCOMING ('I') and FLUSH_DEFERRED ('F').

Trust: the receiver's socket is created with the process umask under queue_directory (0700);
any datagram that arrives is only a hint to look at the queue, never data.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

TRIGGER_NAME = "qmgr.trigger"
SCAN_INCOMING = b"I"
FLUSH_DEFERRED = b"F"
RECEIVE_LIMIT = 64
"""Octets read per datagram; requests are one octet, the rest of a datagram is dropped."""
DRAIN_LIMIT = 1024
"""Datagrams one drain() reads at most, so a flood cannot hold the receiver's loop."""

_IGNORED_SEND_ERRORS = (FileNotFoundError, ConnectionRefusedError, BlockingIOError)


def trigger_path(queue_directory: Path) -> Path:
    return queue_directory / TRIGGER_NAME


class TriggerSender:
    """Sends wake-up requests to one receiver's socket; reuse one per process."""

    def __init__(self, path: Path) -> None:
        self.path = os.fsencode(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def send(self, request: bytes = SCAN_INCOMING) -> bool:
        """Send one request; True if it was delivered to a listening receiver."""
        try:
            self._socket.sendto(request, self.path)
        except _IGNORED_SEND_ERRORS:
            return False
        return True

    def close(self) -> None:
        self._socket.close()


class TriggerReceiver:
    """Binds the trigger socket and collects the requests that arrive on it.

    Register fileno() with the event loop (loop.add_reader) and call drain() when readable.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left over from a process that did not stop cleanly
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._socket.bind(os.fsencode(path))

    def fileno(self) -> int:
        return self._socket.fileno()

    def drain(self) -> set[bytes]:
        """The distinct requests received since the last drain (empty if none)."""
        requests: set[bytes] = set()
        for _ in range(DRAIN_LIMIT):
            try:
                datagram = self._socket.recv(RECEIVE_LIMIT)
            except BlockingIOError:
                break
            if datagram:
                requests.add(datagram[:1])
        return requests

    def close(self) -> None:
        self._socket.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
