"""The qmgr <-> delivery agent protocol: length-prefixed binary frames over a UNIX stream.

qmgr connects to `$queue_directory/private/<transport>` and sends delivery requests; the agent
answers each with one result per recipient. Several requests may be in flight on a connection;
request ids pair answers with requests (answers may come in any order). Bodies never cross the
socket: the agent reads the content from the queue itself.

    frame    = length:u32 payload                      (length counts the payload only)
    payload  = kind:u8 request_id:u32 body
    REQUEST  body = arrival_us:u64 active_us:u64 queue_id:str nexthop:str sender:str
                    count:u32 (index:u32 notify:u8 address:str orig_address:str orcpt:str)*
    RESULT   body = count:u32 (index:u32 outcome:u8 handoff:u8 site_failure:u8
                    dsn:str relay:str text:str)*
    GOODBYE  body = (empty); the agent read nothing after the request with this id and will
                    process nothing more on this connection: unanswered requests sent after it
                    were never started and may be sent again elsewhere at once.
    str      = length:u32 bytes (UTF-8 with surrogateescape, like the queue's text)

Trust: both ends check every length against the frame and every frame against
`DeliveryLimits`; anything malformed raises ProtocolError, and the reader then drops the
connection with a log line. Integers are big-endian; trailing bytes are refused.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from mta.queue.message import decode_text, encode_text

MAX_FRAME_BYTES = 8 * 1024 * 1024
"""Large enough for MAX_REQUEST_RECIPIENTS recipients at the queue's address limits."""
MAX_REQUEST_RECIPIENTS = 1000
MAX_TEXT_BYTES = 4096
"""Bound on a result's dsn, relay and text fields (the queue keeps at most 4096 of a reason)."""

_FRAME_LENGTH = struct.Struct(">I")
_HEAD = struct.Struct(">BI")
_REQUEST_HEAD = struct.Struct(">QQ")
_COUNT = struct.Struct(">I")
_REQUEST_RECIPIENT = struct.Struct(">IB")
_RESULT = struct.Struct(">IBBB")


class ProtocolError(ValueError):
    """A frame that breaks the protocol; the connection it came on must be dropped."""


class FrameKind(enum.IntEnum):
    REQUEST = 1
    RESULT = 2
    GOODBYE = 3


class Outcome(enum.IntEnum):
    """What happened to one recipient, in Postfix's status words."""

    SENT = 0
    DEFERRED = 1
    BOUNCED = 2

    @property
    def word(self) -> str:
        return self.name.lower()


class Handoff(enum.IntEnum):
    """For a SENT recipient: who owes a NOTIFY=SUCCESS sender the notice (RFC 3461 5.2-5.3)."""

    DELIVERED = 0
    """Final delivery here (discard, local): we send an "Action: delivered" notice."""
    RELAYED = 1
    """Handed to a next hop that did not take the DSN request: we send "Action: relayed"."""
    DSN_PASSED_ON = 2
    """The next hop accepted NOTIFY with the recipient: it notifies, we send nothing."""


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    """The bounds a reader enforces on what it is sent."""

    max_frame_bytes: int = MAX_FRAME_BYTES
    max_recipients: int = MAX_REQUEST_RECIPIENTS
    max_text_bytes: int = MAX_TEXT_BYTES


@dataclass(frozen=True, slots=True)
class RequestRecipient:
    index: int
    address: str
    orig_address: str = ""
    orcpt: str = ""
    notify: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    request_id: int
    queue_id: str
    nexthop: str
    sender: str
    arrival_time: float
    """When the message arrived (for delay=)."""
    active_time: float
    """When qmgr took the message into the active queue (for delays=a/b)."""
    recipients: tuple[RequestRecipient, ...]


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    index: int
    outcome: Outcome
    dsn: str
    relay: str
    text: str
    handoff: Handoff = Handoff.DELIVERED
    site_failure: bool = False
    """DEFERRED because the destination could not be reached: no host gave a usable session
    (connection, greeting, EHLO, TLS) or DNS failed. qmgr counts it against the destination's
    concurrency window and may throttle it, as Postfix's qmgr does on a site failure; a
    recipient refused with 4xx by a server that answered is not one (greylisting)."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    request_id: int
    outcomes: tuple[RecipientOutcome, ...]


@dataclass(frozen=True, slots=True)
class Goodbye:
    last_request_id: int
    """The last request the agent read (0 if none); later ones were never started."""


Frame = DeliveryRequest | DeliveryResult | Goodbye


def _field(value: str) -> bytes:
    data = encode_text(value)
    return _FRAME_LENGTH.pack(len(data)) + data


def _frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload)} bytes is over {MAX_FRAME_BYTES}")
    return _FRAME_LENGTH.pack(len(payload)) + payload


def encode_request(request: DeliveryRequest) -> bytes:
    return encode_request_fields(
        request.request_id,
        request.queue_id,
        request.nexthop,
        request.sender,
        request.arrival_time,
        request.active_time,
        [(r.index, r.notify, r.address, r.orig_address, r.orcpt) for r in request.recipients],
    )


def encode_request_fields(
    request_id: int,
    queue_id: str,
    nexthop: str,
    sender: str,
    arrival_time: float,
    active_time: float,
    recipients: Sequence[tuple[int, int, str, str, str]],
) -> bytes:
    """A REQUEST frame straight from its fields; recipients are (index, notify, address,
    orig_address, orcpt). qmgr uses this to skip building a DeliveryRequest per message."""
    if len(recipients) > MAX_REQUEST_RECIPIENTS:
        raise ProtocolError(f"{len(recipients)} recipients in one request")
    parts = [
        _HEAD.pack(FrameKind.REQUEST, request_id),
        _REQUEST_HEAD.pack(_micros(arrival_time), _micros(active_time)),
        _field(queue_id),
        _field(nexthop),
        _field(sender),
        _COUNT.pack(len(recipients)),
    ]
    for index, notify, address, orig_address, orcpt in recipients:
        parts.append(_REQUEST_RECIPIENT.pack(index, notify))
        parts.append(_field(address))
        parts.append(_field(orig_address))
        parts.append(_field(orcpt))
    return _frame(b"".join(parts))


def encode_result(result: DeliveryResult) -> bytes:
    parts = [_HEAD.pack(FrameKind.RESULT, result.request_id), _COUNT.pack(len(result.outcomes))]
    for outcome in result.outcomes:
        parts.append(
            _RESULT.pack(outcome.index, outcome.outcome, outcome.handoff, outcome.site_failure)
        )
        parts.append(_field(outcome.dsn[:MAX_TEXT_BYTES]))
        parts.append(_field(outcome.relay[:MAX_TEXT_BYTES]))
        parts.append(_field(outcome.text[:MAX_TEXT_BYTES]))
    return _frame(b"".join(parts))


def encode_goodbye(goodbye: Goodbye) -> bytes:
    return _frame(_HEAD.pack(FrameKind.GOODBYE, goodbye.last_request_id))


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


class _Reader:
    """Reads fields from one payload, refusing any length that points past its end."""

    __slots__ = ("_data", "_limits", "_offset")

    def __init__(self, data: bytes, limits: DeliveryLimits) -> None:
        self._data = data
        self._limits = limits
        self._offset = 0

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        end = self._offset + layout.size
        if end > len(self._data):
            raise ProtocolError("frame ends inside a fixed-size field")
        values = layout.unpack_from(self._data, self._offset)
        self._offset = end
        return values

    def text(self, limit: int) -> str:
        (length,) = self.unpack(_FRAME_LENGTH)
        if length > limit:
            raise ProtocolError(f"field of {length} bytes is over the limit of {limit}")
        end = self._offset + length
        if end > len(self._data):
            raise ProtocolError("field length points past the end of the frame")
        value = decode_text(self._data[self._offset : end])
        self._offset = end
        return value

    def count(self) -> int:
        (count,) = self.unpack(_COUNT)
        if count > self._limits.max_recipients:
            raise ProtocolError(
                f"{count} recipients, over the limit of {self._limits.max_recipients}"
            )
        return count

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise ProtocolError(f"{len(self._data) - self._offset} trailing bytes in frame")


def decode_frame(payload: bytes, limits: DeliveryLimits = DeliveryLimits()) -> Frame:
    """Decode one frame's payload (without its length prefix); ProtocolError if malformed."""
    reader = _Reader(payload, limits)
    kind, request_id = reader.unpack(_HEAD)
    frame: Frame
    if kind == FrameKind.REQUEST:
        arrival_us, active_us = reader.unpack(_REQUEST_HEAD)
        queue_id = reader.text(limits.max_text_bytes)
        nexthop = reader.text(limits.max_text_bytes)
        sender = reader.text(limits.max_frame_bytes)
        recipients = []
        for _ in range(reader.count()):
            index, notify = reader.unpack(_REQUEST_RECIPIENT)
            address = reader.text(limits.max_frame_bytes)
            orig = reader.text(limits.max_frame_bytes)
            orcpt = reader.text(limits.max_frame_bytes)
            recipients.append(RequestRecipient(index, address, orig, orcpt, notify))
        frame = DeliveryRequest(
            request_id,
            queue_id,
            nexthop,
            sender,
            arrival_us / 1_000_000,
            active_us / 1_000_000,
            tuple(recipients),
        )
    elif kind == FrameKind.RESULT:
        outcomes = []
        for _ in range(reader.count()):
            index, outcome, handoff, site_failure = reader.unpack(_RESULT)
            if outcome not in Outcome._value2member_map_:
                raise ProtocolError(f"unknown outcome {outcome}")
            if handoff not in Handoff._value2member_map_:
                raise ProtocolError(f"unknown handoff {handoff}")
            if site_failure > 1:
                raise ProtocolError(f"bad site failure flag {site_failure}")
            dsn = reader.text(limits.max_text_bytes)
            relay = reader.text(limits.max_text_bytes)
            text = reader.text(limits.max_text_bytes)
            outcomes.append(
                RecipientOutcome(
                    index, Outcome(outcome), dsn, relay, text, Handoff(handoff), bool(site_failure)
                )
            )
        frame = DeliveryResult(request_id, tuple(outcomes))
    elif kind == FrameKind.GOODBYE:
        frame = Goodbye(request_id)
    else:
        raise ProtocolError(f"unknown frame kind {kind}")
    reader.finish()
    return frame


class FrameDecoder:
    """Sans-IO: feed() received bytes, get back the complete frames they finish.

    Holds at most one incomplete frame, itself bounded by max_frame_bytes: a length prefix
    over the limit raises ProtocolError before anything of that frame is buffered.
    """

    __slots__ = ("_buffer", "limits")

    def __init__(self, limits: DeliveryLimits = DeliveryLimits()) -> None:
        self.limits = limits
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        size = len(buffer)
        while size - offset >= 4:
            (length,) = _FRAME_LENGTH.unpack_from(buffer, offset)
            if length > self.limits.max_frame_bytes:
                raise ProtocolError(
                    f"frame of {length} bytes is over the limit of {self.limits.max_frame_bytes}"
                )
            end = offset + 4 + length
            if end > size:
                break
            frames.append(decode_frame(bytes(buffer[offset + 4 : end]), self.limits))
            offset = end
        if offset:
            del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Octets of an incomplete frame held."""
        return len(self._buffer)
