"""The session's dnsmasq (tests/support/dnsmasq.py), started once and stopped by its PID.

This folder is not tests/dns: tests/ is on sys.path, and a `dns` package there would hide
dnspython's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.dnsmasq import RECORDS, Dnsmasq, serving


@pytest.fixture(scope="session")
def dnsmasq() -> Iterator[Dnsmasq]:
    with serving(RECORDS) as server:
        yield server
