"""Log lines in the shape of Postfix's syslog lines, for operators' greps and pflogsumm.

    Jan 02 03:04:05 mx.example mta/smtpd[1234]: connect from unknown[192.0.2.1]

Messages carry Postfix's own prefixes ("warning: ", "error: ") in their text, so the level
is not repeated. Services log through `logging` (logger "mta.<service>"); this only formats.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import TextIO


def configure(program: str, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send the root logger's records to `stream` (stderr) as `HOST mta/PROGRAM[PID]:` lines."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    host = socket.gethostname().partition(".")[0]
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s {host} mta/{program}[%(process)d]: %(message)s",
            datefmt="%b %d %H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
