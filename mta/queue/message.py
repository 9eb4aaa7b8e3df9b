"""The message model of the queue: what smtpd submits and what qmgr and the CLI read back.

Standards: RFC 5321 (envelope), RFC 3461 (DSN: NOTIFY, ORCPT, RET, ENVID), RFC 6152 and
RFC 3030 (BODY=8BITMIME/BINARYMIME), RFC 6531 (SMTPUTF8). Strings are stored as UTF-8 with
surrogateescape, so any byte a client managed to send round-trips exactly. Every field is
bounded by a named, configurable limit in MessageLimits, checked before anything is written.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mta.queue.errors import MessageLimitError


class BodyType(enum.IntEnum):
    """The MAIL FROM BODY= parameter; UNSPECIFIED when the client gave none."""

    UNSPECIFIED = 0
    SEVEN_BIT = 1
    EIGHT_BIT_MIME = 2
    BINARY_MIME = 3


class DsnRet(enum.IntEnum):
    """The MAIL FROM RET= parameter (RFC 3461 section 4.3)."""

    UNSPECIFIED = 0
    FULL = 1
    HDRS = 2


class Notify(enum.IntFlag):
    """The RCPT TO NOTIFY= parameter (RFC 3461 section 4.1)."""

    DEFAULT = 0
    """No NOTIFY parameter: failures (and, at the MTA's choice, delays) are reported."""
    NEVER = 1
    SUCCESS = 2
    FAILURE = 4
    DELAY = 8


class RecipientStatus(enum.IntEnum):
    """Where delivery to one recipient stands."""

    PENDING = 0
    DEFERRED = 1
    DELIVERED = 2
    BOUNCED = 3

    @property
    def final(self) -> bool:
        return self in (RecipientStatus.DELIVERED, RecipientStatus.BOUNCED)


FILTER_EXTRA = "filter"
"""The envelope extra that names a content filter as transport:nexthop (a FILTER action or
content_filter): qmgr delivers every recipient of the message there instead of its route."""

_FILTER_TRANSPORT = re.compile(r"[A-Za-z0-9_-]+")


def split_filter(value: str) -> tuple[str, str] | None:
    """(transport, nexthop) of a content filter transport:nexthop; None when it is malformed
    (no colon, or a transport that is empty or not a transport name). The nexthop may be empty:
    the transport's default, the recipient's domain."""
    transport, colon, nexthop = value.strip().partition(":")
    if not colon or not _FILTER_TRANSPORT.fullmatch(transport):
        return None
    return transport, nexthop


class EnvelopeFlag(enum.IntFlag):
    """Boolean envelope properties, stored in one byte of the envelope record."""

    SMTPUTF8 = 1
    FORCED_EXPIRE = 2


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Bounds on every field of a queued message (main.cf names where Postfix has one)."""

    max_content_bytes: int = 10_240_000  # message_size_limit
    max_recipients: int = 50_000
    max_address_bytes: int = 2048
    max_orcpt_bytes: int = 1024
    max_envid_bytes: int = 512
    max_extras: int = 16
    max_extra_name_bytes: int = 64
    max_extra_value_bytes: int = 1024
    max_reason_bytes: int = 4096


def encode_text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def decode_text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def to_micros(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


def from_micros(micros: int) -> float:
    return micros / 1_000_000


def check_length(what: str, value: bytes, limit: int) -> bytes:
    if len(value) > limit:
        raise MessageLimitError(f"{what} is {len(value)} bytes, over the limit of {limit}")
    return value


@dataclass(frozen=True, slots=True)
class Recipient:
    """One envelope recipient as RCPT TO gave it."""

    address: str
    orig_address: str = ""
    """The address before rewriting; empty means the same as address."""
    orcpt: str = ""
    """The DSN ORCPT parameter as "addr-type;address" (xtext decoded); empty if none."""
    notify: Notify = Notify.DEFAULT


@dataclass(frozen=True, slots=True)
class Message:
    """A message smtpd (or sendmail) hands to the queue: envelope, recipients and content.

    content is headers and body with CRLF line ends as received, already carrying our
    Received header. extras holds small facts about the session for logs and headers
    (client_name, client_address, helo_name, protocol, sasl_username, ...).
    """

    sender: str
    recipients: tuple[Recipient, ...]
    content: bytes
    trace_header: bytes = b""
    """A header to put before content (smtpd's Received), in which QUEUE_ID_PLACEHOLDER is
    replaced by the queue id once the commit gives one out; the id has the same length."""
    arrival_time: float = field(default_factory=time.time)
    extras: Mapping[str, str] = field(default_factory=dict)
    dsn_ret: DsnRet = DsnRet.UNSPECIFIED
    envid: str = ""
    body_type: BodyType = BodyType.UNSPECIFIED
    smtputf8: bool = False
    hold: bool = False
    """Queue it on hold (header_checks HOLD), where qmgr leaves it until released."""

    @property
    def size(self) -> int:
        return len(self.trace_header) + len(self.content)

    def check_limits(self, limits: MessageLimits) -> None:
        """Raise MessageLimitError naming the first field that is over its limit."""
        if len(self.trace_header) + len(self.content) > limits.max_content_bytes:
            raise MessageLimitError(
                f"content is {self.size} bytes, over the limit of {limits.max_content_bytes}"
            )
        if not self.recipients:
            raise MessageLimitError("a message needs at least one recipient")
        if len(self.recipients) > limits.max_recipients:
            raise MessageLimitError(
                f"{len(self.recipients)} recipients, over the limit of {limits.max_recipients}"
            )
        check_length("sender", encode_text(self.sender), limits.max_address_bytes)
        check_length("ENVID", encode_text(self.envid), limits.max_envid_bytes)
        if len(self.extras) > limits.max_extras:
            raise MessageLimitError(
                f"{len(self.extras)} extras, over the limit of {limits.max_extras}"
            )
        for name, value in self.extras.items():
            check_length("extra name", encode_text(name), limits.max_extra_name_bytes)
            check_length(f"extra {name}", encode_text(value), limits.max_extra_value_bytes)
        for recipient in self.recipients:
            check_length("recipient", encode_text(recipient.address), limits.max_address_bytes)
            check_length(
                "original recipient",
                encode_text(recipient.orig_address),
                limits.max_address_bytes,
            )
            check_length("ORCPT", encode_text(recipient.orcpt), limits.max_orcpt_bytes)


@dataclass(frozen=True, slots=True)
class RecipientState:
    """A recipient as the queue holds it, with the state of its delivery."""

    index: int
    recipient: Recipient
    status: RecipientStatus = RecipientStatus.PENDING
    attempts: int = 0
    next_try: float = 0.0
    dsn: str = ""
    """The last enhanced status code, e.g. "4.4.1"."""
    reason: str = ""
    """The last delivery attempt's reason, as `mta queue list` shows it in parentheses."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message read back from the queue: the envelope and recipients, not the content."""

    queue_id: str
    queue_name: str
    arrival_time: float
    sender: str
    size: int
    recipients: tuple[RecipientState, ...]
    extras: Mapping[str, str] = field(default_factory=dict)
    dsn_ret: DsnRet = DsnRet.UNSPECIFIED
    envid: str = ""
    body_type: BodyType = BodyType.UNSPECIFIED
    smtputf8: bool = False
    forced_expire: bool = False


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """The outcome of one delivery attempt to one recipient, as qmgr writes it back."""

    queue_id: str
    index: int
    status: RecipientStatus
    dsn: str = ""
    reason: str = ""
    next_try: float = 0.0
    """When to try again (for DEFERRED); ignored otherwise."""
