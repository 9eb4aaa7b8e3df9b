"""The lmtp agent against a real Dovecot LMTP server (Debian's dovecot-lmtpd), over TCP and
over its UNIX socket, with BDAT (Dovecot offers CHUNKING) and with DATA; the mail is read back
from Dovecot's Maildir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dovecot import Dovecot, running_dovecot

from mta.proto.delivery import Handoff, Outcome
from mta.smtp.settings import Protocol

from .helpers import AgentHarness

MESSAGE = b"Subject: for dovecot\r\nFrom: a@sender.test\r\n\r\n.a dotted line\r\nthe end\r\n"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as server:
        yield server


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_lmtp_delivery_to_dovecot(
    tmp_path: Path, dovecot: Dovecot, over: str, chunking: bool
) -> None:
    main_cf = "" if chunking else "lmtp_discard_lhlo_keywords = chunking\n"
    harness = AgentHarness(tmp_path, main_cf, Protocol.LMTP)
    nexthop = f"unix:{dovecot.socket}" if over == "unix" else f"inet:127.0.0.1:{dovecot.port}"
    users = [f"{over}{int(chunking)}a", f"{over}{int(chunking)}b"]
    request = harness.request(nexthop, *(f"{user}@dove.test" for user in users), content=MESSAGE)
    [outcomes] = harness.run(request)
    harness.close()
    assert [o.outcome for o in outcomes] == [Outcome.SENT, Outcome.SENT]
    assert [o.handoff for o in outcomes] == [Handoff.DELIVERED, Handoff.DELIVERED]
    assert all(o.text.startswith("250 2.0.0 <") and " Saved" in o.text for o in outcomes)
    for user in users:
        (stored,) = dovecot.messages(user)  # each recipient's own copy in its own Maildir
        assert stored.startswith(b"Return-Path: <a@sender.test>\n")
        assert stored.endswith(
            b"Subject: for dovecot\nFrom: a@sender.test\n\n.a dotted line\nthe end\n"
        )
