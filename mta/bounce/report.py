"""Compose one delivery status notification: the RFC 3464 report as a message's bytes.

    multipart/report; report-type=delivery-status                 (RFC 6522)
      text/plain               Notification: Postfix's template text (left out of postmaster
                               copies, as Postfix does), then "<rcpt>: reason" per recipient
      message/delivery-status  Reporting-MTA, Original-Envelope-Id (ENVID), X-Mta-Queue-ID,
                               X-Mta-Sender, Arrival-Date; per recipient Final-Recipient,
                               Original-Recipient (ORCPT, else the address before rewriting),
                               Action, Status, Remote-MTA, Diagnostic-Code, and
                               Will-Retry-Until in a delay warning              (RFC 3464)
      text/rfc822-headers      the original headers, or message/rfc822 with the whole
                               original when asked (RET=FULL on a failure notice) and the
                               original is at most bounce_size_limit bytes: past it, headers
                               only, as Postfix does so no MIME structure is cut.
                               message/global(-headers) for SMTPUTF8 mail   (RFC 6532/6533)

This module is pure: it decides nothing about who gets which notice (mta.bounce.notices does)
and touches no queue. Subjects and text are Postfix's bounce(8) templates.

Trust: addresses, reasons, ENVID and ORCPT come from our queue but first from clients and
next hops. Every value placed in a header or DSN field has CR, LF and other control
characters replaced by spaces, is cut at MAX_FIELD_CHARS, and long lines are folded at spaces
(RFC 5322 2.2.3) or split, so no line passes MAX_LINE_CHARS. The returned original is the
queue's content (CRLF lines, already within message_size_limit), cut as said above; the
header block alone is cut at MAX_RETURNED_HEADER_BYTES. The recipients listed stop once the
report passes MAX_REPORT_BYTES; the rest are counted in one line. A MIME boundary that occurs
in the returned content gets a suffix until it does not.

Parameters (given by the caller): myhostname, myorigin, bounce_size_limit (50000),
delay_warning_time and maximal_queue_lifetime (for the delay warning's text and
Will-Retry-Until).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from mta.queue import QueuedMessage

MAX_RETURNED_HEADER_BYTES = 64 * 1024
"""Of the original message, at most this much of the header block is returned."""
MAX_FIELD_CHARS = 2000
"""One value (an address, a reason, ENVID) is cut here before it goes into a notice."""
MAX_LINE_CHARS = 990
"""No line of a notice is longer (RFC 5322's 998 with room to spare)."""
FOLD_WIDTH = 78
MAX_REPORT_BYTES = 500_000
"""The text and delivery-status parts stop listing recipients past this many bytes."""
MAX_MESSAGE_ID_CHARS = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_SMTP_REPLY = re.compile(r"\bsaid: ([2-5]\d\d(?:[ -].*)?)$")
_IN_REPLY_TO = re.compile(r" \(in reply to [^()]*\)$")
_MESSAGE_ID = re.compile(rb"^Message-Id:[ \t]*(<[^<>\s]+>)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


class Action(enum.StrEnum):
    """The per-recipient Action field (RFC 3464 section 2.3.3)."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"


class Kind(enum.Enum):
    """Which of Postfix's bounce(8) templates a notice follows."""

    FAILURE = "failure"
    DELAY = "delay"
    SUCCESS = "success"
    PROBLEM = "problem"
    """A resource or software problem at delivery, for error_notice_recipient only."""


class Returned(enum.Enum):
    """How much of the original goes back: its headers, or all of it (RET=FULL)."""

    HEADERS = "headers"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    postmaster_subject: str
    text: tuple[str, ...]
    """The sender's boilerplate; {myhostname}, {delay} and {lifetime} are filled in."""
    undelivered: bool
    """The returned part is described as "Undelivered Message"."""


_HELP = (
    "For further assistance, please send mail to postmaster.",
    "",
    "If you do so, please include this problem report. You can",
    "delete your own text from the attached returned message.",
    "",
    "                   The mail system",
)

TEMPLATES: dict[Kind, Template] = {
    Kind.FAILURE: Template(
        "Undelivered Mail Returned to Sender",
        "Postmaster Copy: Undelivered Mail",
        (
            "This is the mail system at host {myhostname}.",
            "",
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients. It's attached below.",
            "",
            *_HELP,
        ),
        undelivered=True,
    ),
    Kind.DELAY: Template(
        "Delayed Mail (still being retried)",
        "Postmaster Warning: Delayed Mail",
        (
            "This is the mail system at host {myhostname}.",
            "",
            "####################################################################",
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
            "####################################################################",
            "",
            "Your message could not be delivered for more than {delay}.",
            "It will be retried until it is {lifetime} old.",
            "",
            *_HELP,
        ),
        undelivered=True,
    ),
    Kind.SUCCESS: Template(
        "Successful Mail Delivery Report",
        "Successful Mail Delivery Report",
        (
            "This is the mail system at host {myhostname}.",
            "",
            "Your message was successfully delivered to the destination(s)",
            "listed below. If the message was delivered to mailbox you will",
            "receive no further notifications. Otherwise you may still receive",
            "notifications of mail delivery errors from other systems.",
            "",
            "                   The mail system",
        ),
        undelivered=False,
    ),
    Kind.PROBLEM: Template(
        "Postmaster Warning: Mail Delivery Problem",
        "Postmaster Warning: Mail Delivery Problem",
        (),
        undelivered=True,
    ),
}


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One recipient of a notice: who, what happened, and what the next hop said."""

    address: str
    orig_address: str = ""
    orcpt: str = ""
    action: Action = Action.FAILED
    status: str = ""
    """The enhanced status code; one fitting the action if it is empty or malformed."""
    diagnostic: str = ""
    relay: str = ""
    """The delivery agent's relay= value: "host[address]:port" names a Remote-MTA."""


@dataclass(frozen=True, slots=True)
class ReportContext:
    """What a notice needs to know of the configuration."""

    myhostname: str
    myorigin: str
    bounce_size_limit: int = 50000
    delay_warning_time: float = 0.0
    maximal_queue_lifetime: float = 5 * 86400.0


@dataclass(frozen=True, slots=True)
class Composed:
    """A notice's content (CRLF lines) and what the queue should know of it."""

    content: bytes
    eight_bit: bool
    """Some byte is not ASCII: the notice goes out as 8BITMIME."""
    smtputf8: bool
    """A header or address in it is UTF-8: the notice needs SMTPUTF8."""


def clean(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """One line of text safe for a header: no control characters, at most limit characters."""
    return _CONTROL.sub(" ", value[:limit])


def fold(line: str, width: int = FOLD_WIDTH, indent: str = " ") -> list[str]:
    """Fold a header-style line at spaces to about width; split words too long for a line."""
    if len(line) <= width:
        return [line]
    lines: list[str] = []
    current = ""
    cut = MAX_LINE_CHARS - len(indent)
    for piece in line.split(" "):
        word = piece
        while len(word) > cut:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return [lines[0], *(indent + line for line in lines[1:])]


def header_block(content: bytes, limit: int = MAX_RETURNED_HEADER_BYTES) -> bytes:
    """The original headers (up to the empty line), cut at a line end within limit."""
    end = content.find(b"\r\n\r\n")
    headers = content if end < 0 else content[: end + 2]
    if len(headers) > limit:
        headers = headers[:limit]
        headers = headers[: headers.rfind(b"\r\n") + 2] if b"\r\n" in headers else b""
    elif headers and not headers.endswith(b"\r\n"):
        headers += b"\r\n"
    return headers


def original_message_id(content: bytes) -> str:
    """The original's Message-Id ("<...>"), for In-Reply-To and References; "" if none."""
    match = _MESSAGE_ID.search(header_block(content))
    if match is None or len(match.group(1)) > MAX_MESSAGE_ID_CHARS:
        return ""
    return match.group(1).decode("ascii", "replace")


def remote_mta(relay: str) -> str:
    """The host of an agent's "host[address]:port" relay value; "" for local delivery."""
    host, bracket, _ = relay.partition("[")
    return clean(host.strip()) if bracket and host.strip() else ""


def diagnostic_code(text: str) -> str:
    """An SMTP reply quoted in a reason becomes "smtp; reply"; any other reason "X-mta; ..."."""
    match = _SMTP_REPLY.search(text)
    if match is not None:
        return "smtp; " + _IN_REPLY_TO.sub("", match.group(1))
    return f"X-mta; {text}"


def status_code(status: str, action: Action) -> str:
    if _STATUS.fullmatch(status):
        return status
    return {Action.FAILED: "5.0.0", Action.DELAYED: "4.0.0"}.get(action, "2.0.0")


def mail_date(when: float) -> str:
    return format_datetime(datetime.fromtimestamp(when).astimezone())


def human_time(seconds: float) -> str:
    """Postfix's "N hour(s)" wording, in the largest unit that divides the time."""
    value = max(0, round(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}(s)"
    return f"{value} second(s)"


def _address_type(address: str, smtputf8: bool) -> str:
    return "utf-8" if smtputf8 and not address.isascii() else "rfc822"


def _entry_lines(
    entry: ReportEntry, message: QueuedMessage, context: ReportContext, kind: Kind
) -> tuple[list[str], list[str]]:
    """(the text part's lines, the delivery-status part's lines) for one recipient."""
    address = clean(entry.address)
    orig = clean(entry.orig_address)
    reason = clean(entry.diagnostic) or entry.action.value
    expanded = f" (expanded from <{orig}>)" if orig and orig != address else ""
    text = fold(f"<{address}>{expanded}: {reason}", indent="    ")
    fields = [f"Final-Recipient: {_address_type(address, message.smtputf8)}; {address}"]
    if entry.orcpt:
        fields.append(f"Original-Recipient: {clean(entry.orcpt)}")
    elif orig:
        fields.append(f"Original-Recipient: {_address_type(orig, message.smtputf8)}; {orig}")
    fields.append(f"Action: {entry.action.value}")
    fields.append(f"Status: {status_code(entry.status, entry.action)}")
    host = remote_mta(entry.relay)
    if host:
        fields.append(f"Remote-MTA: dns; {host}")
    fields.append(f"Diagnostic-Code: {diagnostic_code(reason)}")
    if kind is Kind.DELAY:
        until = message.arrival_time + context.maximal_queue_lifetime
        fields.append(f"Will-Retry-Until: {mail_date(until)}")
    dsn = [line for field in fields for line in fold(field)]
    return text, dsn


def _encode(lines: Sequence[str]) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "surrogateescape")


def compose(
    kind: Kind,
    message: QueuedMessage,
    entries: Sequence[ReportEntry],
    content: bytes,
    context: ReportContext,
    *,
    to: str,
    postmaster: bool,
    returned: Returned,
    now: float,
    tag: str,
) -> Composed:
    """The notice of `kind` about `entries` of `message`, addressed to `to`.

    A postmaster copy has the postmaster subject and no boilerplate. `returned` is what the
    original part holds (FULL still falls back to headers past bounce_size_limit). `tag`
    tells apart the Message-Ids of several notices about one message made at once.
    """
    template = TEMPLATES[kind]
    texts: list[str] = []
    reports: list[str] = []
    used = 0
    listed = 0
    for entry in entries:
        text, dsn = _entry_lines(entry, message, context, kind)
        size = sum(len(line) + 2 for line in (*text, *dsn))
        if listed and used + size > MAX_REPORT_BYTES:
            break
        used += size
        listed += 1
        texts += [*text, ""]
        reports += ["", *dsn]
    if listed < len(entries):
        texts += [f"({len(entries) - listed} more recipients are not listed here)", ""]

    limit = context.bounce_size_limit
    full = returned is Returned.FULL and (limit <= 0 or len(content) <= limit)
    original = content if full else header_block(content)
    if original and not original.endswith(b"\r\n"):
        original += b"\r\n"
    original = _encode([f"Return-Path: <{clean(message.sender)}>"]) + original
    if message.smtputf8:
        original_type = "message/global" if full else "message/global-headers"
    else:
        original_type = "message/rfc822" if full else "text/rfc822-headers"
    description = ("Undelivered " if template.undelivered else "") + (
        "Message" if full else "Message Headers"
    )

    boilerplate: list[str] = []
    if not postmaster:
        values = {
            "myhostname": context.myhostname,
            "delay": human_time(context.delay_warning_time),
            "lifetime": human_time(context.maximal_queue_lifetime),
        }
        boilerplate = [line.format(**values) for line in template.text]
        if boilerplate:
            boilerplate.append("")
    notification = [*boilerplate, *texts]
    delivery_status = [f"Reporting-MTA: dns; {context.myhostname}"]
    if message.envid:
        delivery_status += fold(f"Original-Envelope-Id: {clean(message.envid)}")
    delivery_status.append(f"X-Mta-Queue-ID: {message.queue_id}")
    if message.sender:
        sender = clean(message.sender)
        delivery_status += fold(
            f"X-Mta-Sender: {_address_type(sender, message.smtputf8)}; {sender}"
        )
    delivery_status.append(f"Arrival-Date: {mail_date(message.arrival_time)}")
    delivery_status += reports

    text_bytes = _encode(notification)
    status_bytes = _encode(delivery_status)
    body_parts = text_bytes + status_bytes + original
    boundary = f"{message.queue_id}.{int(now)}/{context.myhostname}"
    base, suffix = boundary, 0
    while boundary.encode() in body_parts:
        suffix += 1
        boundary = f"{base}.{suffix}"

    def part_head(description: str, content_type: str, data: bytes) -> list[str]:
        head = ["", f"--{boundary}", f"Content-Description: {description}"]
        head.append(f"Content-Type: {content_type}")
        if not data.isascii():
            head.append("Content-Transfer-Encoding: 8bit")
        return [*head, ""]

    charset = "us-ascii" if text_bytes.isascii() else "utf-8"
    recipient = clean(to)
    message_id = original_message_id(content)
    subject = template.postmaster_subject if postmaster else template.subject
    headers = [
        f"From: MAILER-DAEMON@{context.myorigin} (Mail Delivery System)",
        *fold(f"To: {recipient}"),
        f"Subject: {subject}",
        f"Date: {mail_date(now)}",
        f"Message-Id: <{int(now * 1_000_000)}.{tag}.{message.queue_id}@{context.myhostname}>",
    ]
    if message_id:
        headers += [f"In-Reply-To: {message_id}", f"References: {message_id}"]
    eight_bit = not (body_parts.isascii() and recipient.isascii())
    headers += [
        f"Auto-Submitted: {'auto-generated' if postmaster else 'auto-replied'}",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        f"Content-Transfer-Encoding: {'8bit' if eight_bit else '7bit'}",
        "",
        "This is a MIME-encapsulated message.",
    ]
    data = b"".join(
        (
            _encode(headers),
            _encode(part_head("Notification", f"text/plain; charset={charset}", text_bytes)),
            text_bytes,
            _encode(part_head("Delivery report", "message/delivery-status", status_bytes)),
            status_bytes,
            _encode(part_head(description, original_type, original)),
            original,
            _encode(["", f"--{boundary}--"]),
        )
    )
    return Composed(data, eight_bit, not recipient.isascii() or message.smtputf8)
