"""Log lines in the shape of Postfix's syslog lines, for operators' greps and pflogsumm.

    Jan 02 03:04:05 mx.example mta/smtpd[1234]: connect from unknown[192.0.2.1]

Messages carry Postfix's own prefixes ("warning: ", "error: ") in their text, so the level
is not repeated. Lines go to stderr, or with `path` (maillog_file) to that file opened for
append; each line is one write(2) of a whole line, so several processes can share one log
(O_APPEND) without tearing lines. The master hands its children the log as their stderr, so
a child that logs to stderr lands in the same file.

Two ways in: `logging` (logger "mta.<service>") for warnings and rare events, and `line()`
for the per-message lines (client=, queue active, to=..., removed), which skips building a
LogRecord: at thousands of messages a second, Python's logging machinery was a tenth of a
worker's time. Both write through the same sink, so their lines keep their order.
A line that cannot be written (disk full, closed pipe) is dropped: a service never stops
over its log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO


class _Sink:
    """Formats and writes whole lines to one file descriptor."""

    def __init__(self, fd: int, program: str, syslog_name: str) -> None:
        self.fd = fd
        host = socket.gethostname().partition(".")[0]
        self.prefix = f" {host} {syslog_name}/{program}[{os.getpid()}]: ".encode()
        self._second = -1
        self._stamp = b""

    def write(self, message: str) -> None:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%b %d %H:%M:%S", time.localtime(now)).encode()
        data = self._stamp + self.prefix + message.encode("utf-8", "surrogateescape") + b"\n"
        with contextlib.suppress(OSError):
            os.write(self.fd, data)


class _SinkHandler(logging.Handler):
    def __init__(self, sink: _Sink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        except Exception:  # a bad format string in a log call must not take a service down
            self.handleError(record)
            return
        for text in message.splitlines() or [""]:
            self.sink.write(text)


_sink: _Sink | None = None
_kept_open: list[TextIO] = []


def configure(
    program: str,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    *,
    path: Path | None = None,
    syslog_name: str = "mta",
) -> None:
    """Send log lines as `HOST SYSLOG_NAME/PROGRAM[PID]:` lines to `path` (appended) when
    given, else to `stream` (stderr), both through `logging` and through line()."""
    global _sink
    if path is not None:
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
        _kept_open.append(handle)
        fd = handle.fileno()
    else:
        target = stream if stream is not None else sys.stderr
        target.flush()
        fd = target.fileno()
    _sink = _Sink(fd, program, syslog_name)
    root = logging.getLogger()
    root.handlers[:] = [_SinkHandler(_sink)]
    root.setLevel(level)


def line(message: str, logger: str = "mta") -> None:
    """Log one per-message line (Postfix's wording, no level prefix) at INFO; `logger` names
    the logger that gets it when configure() was not called (embedded use, tests)."""
    if _sink is None:
        logging.getLogger(logger).info("%s", message)
    else:
        _sink.write(message)
