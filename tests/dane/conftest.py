"""The session's DNSSEC world (tests/support/dnssec.py): NSD with a signed and an unsigned
zone, a validating unbound in front of it, and the PKI its TLSA records name; made once and
stopped by their PIDs at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.dnssec import DnssecWorld, dnssec_world


@pytest.fixture(scope="session")
def world() -> Iterator[DnssecWorld]:
    with dnssec_world() as made:
        yield made
