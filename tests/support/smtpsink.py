"""Postfix's smtp-sink (package postfix, ci/apt-test-packages.txt) as a test receiver.

    with running_sink("-r", "rcpt") as sink:       # 4xx to every RCPT
        ...deliver to 127.0.0.1:sink.port...
    with running_sink(keep=True) as sink:          # each message kept as a file in sink.kept
        ...

It listens on a free 127.0.0.1 port, runs as nobody, is ready once it accepts a connection,
and is stopped by the PID this helper started (tests/support/daemon.py); its folder is removed
afterwards. A missing smtp-sink fails the test; it never skips.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.daemon import accepting, binary, free_port, start_daemon, stop_daemon

BACKLOG = "64"


@dataclass
class SmtpSink:
    port: int
    kept: Path
    """Where smtp-sink -d writes one file per message (empty unless keep was asked for)."""


@contextlib.contextmanager
def running_sink(*options: str, keep: bool = False) -> Iterator[SmtpSink]:
    """smtp-sink with the given options on a free loopback port; keep: -d, a file a message."""
    sink = binary("smtp-sink", "postfix")
    directory = Path(tempfile.mkdtemp(prefix="mta-sink-", dir="/tmp"))
    kept = directory / "kept"
    kept.mkdir()
    directory.chmod(0o711)  # smtp-sink writes as nobody: it must reach kept ...
    kept.chmod(0o777)  # ... and write there
    port = free_port()
    command = [sink, "-u", "nobody", *options]
    if keep:
        command += ["-d", f"{kept}/%M."]
    command += [f"127.0.0.1:{port}", BACKLOG]
    try:
        process = start_daemon(command, directory, "smtp-sink", ready=lambda: accepting(port))
        try:
            yield SmtpSink(port, kept)
        finally:
            stop_daemon(process)
    finally:  # also when it never started: its folder goes too
        shutil.rmtree(directory, ignore_errors=True)
