"""Messages and results for the bounce tests, as the queue would hand them out."""

from __future__ import annotations

import email
import email.message
import email.policy
from collections.abc import Sequence

from mta.bounce.notices import NoticeSettings, NotifyClass
from mta.bounce.report import ReportContext
from mta.queue import (
    DsnRet,
    Notify,
    QueuedMessage,
    Recipient,
    RecipientState,
    RecipientStatus,
)

ARRIVAL = 1_700_000_000.0
NOW = ARRIVAL + 3 * 3600
CONTENT = (
    b"Received: from client.test by mx.example.test\r\n"
    b"Message-Id: <original.1@client.test>\r\n"
    b"Subject: quarterly figures\r\n"
    b"From: alice@client.test\r\n"
    b"\r\n"
    b"the body line that only RET=FULL returns\r\n"
)
CONTEXT = ReportContext("mx.example.test", "example.test", 50000, 4 * 3600.0, 5 * 86400.0)


def settings(
    *classes: NotifyClass, limit: int = 50000, delay: float = 4 * 3600.0
) -> NoticeSettings:
    context = ReportContext("mx.example.test", "example.test", limit, delay, 5 * 86400.0)
    chosen = (
        frozenset(classes) if classes else frozenset({NotifyClass.RESOURCE, NotifyClass.SOFTWARE})
    )
    return NoticeSettings(context=context, notify_classes=chosen)


def recipient(
    index: int,
    address: str,
    status: RecipientStatus = RecipientStatus.BOUNCED,
    notify: Notify = Notify.DEFAULT,
    orcpt: str = "",
    orig: str = "",
    dsn: str = "5.1.1",
    reason: str = "unknown user",
) -> RecipientState:
    return RecipientState(
        index=index,
        recipient=Recipient(address, orig_address=orig, orcpt=orcpt, notify=notify),
        status=status,
        attempts=1,
        dsn=dsn,
        reason=reason,
    )


def message(
    recipients: Sequence[RecipientState],
    sender: str = "alice@client.test",
    ret: DsnRet = DsnRet.UNSPECIFIED,
    envid: str = "",
    extras: dict[str, str] | None = None,
    smtputf8: bool = False,
) -> QueuedMessage:
    return QueuedMessage(
        queue_id="0ABCDEFGHI",
        queue_name="active",
        arrival_time=ARRIVAL,
        sender=sender,
        size=len(CONTENT),
        recipients=tuple(recipients),
        extras=extras or {},
        dsn_ret=ret,
        envid=envid,
        smtputf8=smtputf8,
    )


def parse(data: bytes) -> email.message.Message:
    return email.message_from_bytes(data, policy=email.policy.compat32)


def subparts(part: email.message.Message) -> list[email.message.Message]:
    """The parts of a multipart (or the blocks of a delivery-status, the message of a
    message/rfc822)."""
    payload = part.get_payload()
    assert isinstance(payload, list)
    found = [item for item in payload if isinstance(item, email.message.Message)]
    assert len(found) == len(payload)
    return found


def text(part: email.message.Message) -> str:
    payload = part.get_payload()
    assert isinstance(payload, str)
    return payload


def report_parts(data: bytes) -> tuple[email.message.Message, list[email.message.Message]]:
    """The notice and its three MIME parts; checks the multipart/report frame."""
    notice = parse(data)
    assert notice.get_content_type() == "multipart/report"
    assert notice.get_param("report-type") == "delivery-status"
    parts = subparts(notice)
    assert len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    return notice, parts


def dsn_fields(
    part: email.message.Message,
) -> tuple[email.message.Message, list[email.message.Message]]:
    """(per-message fields, per-recipient field blocks) of a message/delivery-status part."""
    blocks = subparts(part)
    assert len(blocks) >= 2
    return blocks[0], blocks[1:]
