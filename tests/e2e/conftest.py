"""Full instances (master, smtpd workers, qmgr, discard/error/local agents) on 127.0.0.1.

Each instance lives in a short directory under /tmp (UNIX socket paths must fit AF_UNIX), logs
to maillog_file there, and is stopped at teardown by SIGTERM to the master's PID; teardown
fails if any child the instance ever had (PIDs from master.status) outlived the master.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.instance import Instance

FULL_MASTER_CF = """\
127.0.0.1:0 inet n - n - - smtpd
qmgr      unix  n - n 300 1 qmgr
discard   unix  - - n -   - discard
error     unix  - - n -   - error
local     unix  - n n -   - local
"""
FAST_RETRIES = (
    "queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n"
    "delivery_agent_crash_retry_time = 1s\ntransport_retry_time = 1s\n"
)


def running(main_cf: str) -> Iterator[Instance]:
    directory = Path(tempfile.mkdtemp(prefix="e2e-", dir="/tmp"))
    instance = Instance(directory, FULL_MASTER_CF, FAST_RETRIES + main_cf)
    try:
        instance.start_foreground()
        yield instance
    finally:
        leftovers = instance.stop()
        shutil.rmtree(directory, ignore_errors=True)
    assert instance.master is not None and instance.master.returncode == 0
    assert leftovers == [], f"children left after the master stopped: {leftovers}"


@pytest.fixture(scope="module")
def discard_mta() -> Iterator[Instance]:
    """default_transport = discard; user@localhost goes to the local agent (Maildir)."""
    yield from running("default_transport = discard\n")


@pytest.fixture(scope="module")
def guarded_mta() -> Iterator[Instance]:
    """Small limits, and 127.0.0.1 outside mynetworks: only local recipients are accepted."""
    yield from running(
        "default_transport = discard\nmessage_size_limit = 20000\nsmtpd_recipient_limit = 5\n"
        "mynetworks = 192.0.2.0/24\n"
    )


@pytest.fixture
def crash_mta() -> Iterator[Instance]:
    """A fresh instance per crash test: each kills one of its children."""
    yield from running("default_transport = discard\n")
