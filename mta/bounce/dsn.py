"""Non-delivery notifications: a minimal RFC 3464 report returned to the sender.

    multipart/report; report-type=delivery-status           (RFC 6522)
      text/plain                 what failed and why, for people
      message/delivery-status    Reporting-MTA, Arrival-Date, then per recipient
                                 Final-Recipient, Original-Recipient, Action: failed,
                                 Status, Diagnostic-Code               (RFC 3464)
      text/rfc822-headers        the original message's headers

The notice has the null sender (RFC 5321 section 4.5.5), so it can never bounce back and
loop; mail that already has the null sender gets no notice (the caller logs it). Recipients
with NOTIFY=NEVER, or a NOTIFY list without FAILURE, are left out (RFC 3461 section 4.1).
Issue 6 adds delay warnings, success notices and RET=FULL.

Trust: every value placed in a header comes from our queue, yet CR and LF are removed from
each so that no address or reason can add a header line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, localtime

from mta.queue import Message, Notify, QueuedMessage, Recipient, RecipientState

MAX_RETURNED_HEADER_BYTES = 64 * 1024
"""Of the original message, at most this much of the header block is returned."""


def wants_failure_notice(recipient: RecipientState) -> bool:
    notify = recipient.recipient.notify
    if notify & Notify.NEVER:
        return False
    return notify == Notify.DEFAULT or bool(notify & Notify.FAILURE)


def _clean(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def header_block(content: bytes) -> bytes:
    """The original headers (up to the empty line), bounded, with CRLF line ends."""
    end = content.find(b"\r\n\r\n")
    headers = content if end < 0 else content[: end + 2]
    headers = headers[:MAX_RETURNED_HEADER_BYTES]
    if not headers.endswith(b"\r\n"):
        headers = headers[: headers.rfind(b"\r\n") + 2] if b"\r\n" in headers else b""
    return headers


def build_bounce(
    message: QueuedMessage,
    failed: Sequence[RecipientState],
    content: bytes,
    myhostname: str,
    now: float | None = None,
) -> Message:
    """The non-delivery notice for `failed` recipients of `message`, from MAILER-DAEMON."""
    now = time.time() if now is None else now
    boundary = f"{message.queue_id}.{int(now)}/{myhostname}"
    date = format_datetime(localtime())
    arrival = format_datetime(localtime(datetime.fromtimestamp(message.arrival_time, UTC)))
    sender = _clean(message.sender)
    lines = [
        f"From: MAILER-DAEMON@{myhostname} (Mail Delivery System)",
        f"To: {sender}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {date}",
        f"Message-Id: <{message.queue_id}.{int(now)}@{myhostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"This is the mail system at host {myhostname}.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. It's attached below.",
        "",
    ]
    for recipient in failed:
        lines.append(f"<{_clean(recipient.recipient.address)}>: {_clean(recipient.reason)}")
    lines += [
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {myhostname}",
        f"X-Mta-Queue-ID: {message.queue_id}",
        f"Arrival-Date: {arrival}",
    ]
    for recipient in failed:
        lines.append("")
        lines.append(f"Final-Recipient: rfc822; {_clean(recipient.recipient.address)}")
        if recipient.recipient.orcpt:
            lines.append(f"Original-Recipient: {_clean(recipient.recipient.orcpt)}")
        lines.append("Action: failed")
        lines.append(f"Status: {_clean(recipient.dsn) or '5.0.0'}")
        lines.append(f"Diagnostic-Code: X-mta; {_clean(recipient.reason)}")
    lines += [
        "",
        f"--{boundary}",
        "Content-Description: Undelivered Message Headers",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"
    tail = f"\r\n--{boundary}--\r\n".encode()
    return Message(
        sender="",
        recipients=(Recipient(address=message.sender),),
        content=head + header_block(content) + tail,
        arrival_time=now,
    )
