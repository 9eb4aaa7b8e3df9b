"""Full instances (master, smtpd workers, qmgr, discard/error/local agents) on 127.0.0.1.

Each instance lives in a short directory under /tmp (UNIX socket paths must fit AF_UNIX), logs
to maillog_file there, and is stopped at teardown by SIGTERM to the master's PID; teardown
fails if any child the instance ever had (PIDs from master.status) outlived the master.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.instance import FAST_RETRIES, FULL_MASTER_CF, Instance, running_instance


def running(main_cf: str) -> Iterator[Instance]:
    with running_instance("e2e-", FULL_MASTER_CF, FAST_RETRIES + main_cf) as instance:
        yield instance


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
