"""A sender's non-delivery notice in one call (the RFC 3464 report of mta.bounce.report).

build_bounce() is the failure notice that qmgr's mta.bounce.notices makes for a sender: the
null sender (RFC 5321 section 4.5.5, so it can never bounce back and loop), the headers of
the original or, with RET=FULL, the whole original up to bounce_size_limit bytes. Recipients
whose NOTIFY excludes FAILURE are the caller's to leave out (wants_failure_notice).

Trust: as mta.bounce.report: every value placed in a header has CR and LF removed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from mta.bounce.notices import wants_failure_notice as _wants_failure
from mta.bounce.report import (
    MAX_RETURNED_HEADER_BYTES,
    Action,
    Kind,
    ReportContext,
    ReportEntry,
    Returned,
    compose,
    header_block,
)
from mta.queue import DsnRet, Message, Notify, QueuedMessage, Recipient, RecipientState

__all__ = ["MAX_RETURNED_HEADER_BYTES", "build_bounce", "header_block", "wants_failure_notice"]


def wants_failure_notice(recipient: RecipientState) -> bool:
    return _wants_failure(recipient.recipient.notify)


def build_bounce(
    message: QueuedMessage,
    failed: Sequence[RecipientState],
    content: bytes,
    myhostname: str,
    now: float | None = None,
    bounce_size_limit: int = 50000,
) -> Message:
    """The non-delivery notice for `failed` recipients of `message`, from MAILER-DAEMON."""
    now = time.time() if now is None else now
    entries = [
        ReportEntry(
            address=r.recipient.address,
            orig_address=r.recipient.orig_address,
            orcpt=r.recipient.orcpt,
            action=Action.FAILED,
            status=r.dsn,
            diagnostic=r.reason,
        )
        for r in failed
    ]
    composed = compose(
        Kind.FAILURE,
        message,
        entries,
        content,
        ReportContext(myhostname, myhostname, bounce_size_limit),
        to=message.sender,
        postmaster=False,
        returned=Returned.FULL if message.dsn_ret is DsnRet.FULL else Returned.HEADERS,
        now=now,
        tag="fs",
    )
    return Message(
        sender="",
        recipients=(Recipient(address=message.sender, notify=Notify.NEVER),),
        content=composed.content,
        arrival_time=now,
        smtputf8=composed.smtputf8,
    )
