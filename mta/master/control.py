"""The files through which the master is found and watched: master.lock, master.pid, master.status.

The master holds an exclusive flock on $data_directory/master.lock for its whole life, so a
PID in master.pid is believed only while someone holds that lock (a stale file from a crash,
or a PID since reused by another program, is never signalled). master.status is JSON rewritten
atomically (write, fsync-free rename) on every change: the services, their processes and the
configuration generation.

Security: these files live in data_directory (mode 0700, owned by mail_owner when started as
root); readers bound what they read (MAX_STATUS_BYTES).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

LOCK_NAME = "master.lock"
PID_NAME = "master.pid"
STATUS_NAME = "master.status"
MAX_STATUS_BYTES = 1024 * 1024
MAX_PID_BYTES = 32


class AlreadyRunning(Exception):
    """Another master holds the lock on this data directory."""


def acquire_lock(data_directory: Path) -> int:
    """Take the master's exclusive lock and return its fd (kept open while the master runs)."""
    fd = os.open(data_directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(
            f"{data_directory / LOCK_NAME} is locked by a running master"
        ) from None
    return fd


def running_master_pid(data_directory: Path) -> int | None:
    """The PID of the master that holds the lock, or None when no master is running."""
    try:
        fd = os.open(data_directory / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a master is running
        else:
            return None
    finally:
        os.close(fd)
    try:
        text = (data_directory / PID_NAME).read_bytes()[:MAX_PID_BYTES].decode().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def read_status(data_directory: Path) -> dict[str, Any] | None:
    """master.status as written by the running master, or None."""
    try:
        with (data_directory / STATUS_NAME).open("rb") as handle:
            raw = handle.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_STATUS_BYTES:
        return None
    with contextlib.suppress(ValueError):
        status = json.loads(raw)
        if isinstance(status, dict):
            return status
    return None
