"""Log lines in the shape of Postfix's syslog lines, for operators' greps and pflogsumm.

    Jan 02 03:04:05 mx.example mta/smtpd[1234]: connect from unknown[192.0.2.1]

Messages carry Postfix's own prefixes ("warning: ", "error: ") in their text, so the level
is not repeated. Services log through `logging` (logger "mta.<service>"); this only formats.
Lines go to stderr, or with `path` (maillog_file) to that file opened for append, one write
per line, so that several processes can share it. The master hands its children the log as
their stderr, so a child that logs to stderr lands in the same file.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import TextIO


def configure(
    program: str,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    *,
    path: Path | None = None,
    syslog_name: str = "mta",
) -> None:
    """Send the root logger's records as `HOST SYSLOG_NAME/PROGRAM[PID]:` lines to `path`
    (appended) when given, else to `stream` (stderr)."""
    handler: logging.Handler
    if path is not None:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    host = socket.gethostname().partition(".")[0]
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s {host} {syslog_name}/{program}[%(process)d]: %(message)s",
            datefmt="%b %d %H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
