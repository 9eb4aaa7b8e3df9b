"""Queue record codec, pure-Python twin of hotpath/_queue.pyx (same names, same behaviour).

Encodes and decodes the binary records and keys of the LMDB mail queue. Every variable field
is length-prefixed (big-endian u32), never delimited, so no byte a client sends (CR, LF, NUL,
something that looks like a length) can end a field early or forge another one: this is the
defence against record injection of the Exim "21Nails" kind. Keys are big-endian so that byte
order is numeric order, and queue ids are fixed-width base-62 in ASCII order so that byte order
is arrival order.

Trusts nothing it decodes: every length is checked against the buffer, every enum against its
range, and trailing bytes are refused; any violation raises RecordError, never an over-read.

Record layouts (all integers big-endian):
  envelope  = "E" version:u8 arrival_us:u64 size:u64 rcpt_count:u32 flags:u8 body_type:u8
              dsn_ret:u8 sender:str envid:str extra_count:u16 (name:str value:str)*
  recipient = "R" version:u8 notify:u8 status:u8 attempts:u32 next_try_us:u64
              address:str orig_address:str orcpt:str dsn:str reason:str
  str       = length:u32 bytes
  rcpt key  = queue_id index:u32        time key = time_us:u64 queue_id
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

ENVELOPE_MAGIC = 0x45  # "E"
RECIPIENT_MAGIC = 0x52  # "R"
RECORD_VERSION = 1

QUEUE_ID_LENGTH = 10
"""Base-62 digits of a queue id: 62**10 microseconds is far beyond any clock we will meet."""
QUEUE_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_QUEUE_ID_STAMP = 62**QUEUE_ID_LENGTH - 1

MAX_FIELD_BYTES = 0xFFFFFFFF
MAX_EXTRAS = 0xFFFF
MAX_RECIPIENT_INDEX = 0xFFFFFFFF
MAX_U64 = 0xFFFFFFFFFFFFFFFF
MAX_BODY_TYPE = 3
MAX_DSN_RET = 2
MAX_NOTIFY = 0x0F
MAX_STATUS = 3
MAX_FLAGS = 0xFF

EnvelopeFields = tuple[int, int, int, int, int, int, bytes, bytes, list[tuple[bytes, bytes]]]
"""(arrival_us, size, rcpt_count, flags, body_type, dsn_ret, sender, envid, extras)"""
RecipientFields = tuple[int, int, int, int, bytes, bytes, bytes, bytes, bytes]
"""(notify, status, attempts, next_try_us, address, orig_address, orcpt, dsn, reason)"""
IndexedRecipient = tuple[int, RecipientFields]

_ENVELOPE_HEAD = struct.Struct(">BBQQIBBB")
_RECIPIENT_HEAD = struct.Struct(">BBBBIQ")
_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">H")
_RCPT_INDEX = struct.Struct(">I")
_TIME = struct.Struct(">Q")
_DIGIT_VALUES = {ord(char): value for value, char in enumerate(QUEUE_ID_ALPHABET)}


class RecordError(ValueError):
    """A record or key is malformed, truncated, or a value does not fit its field."""


def format_queue_id(stamp_us: int) -> str:
    """Return the fixed-width base-62 queue id of a microsecond stamp (sorts like the stamp)."""
    if not 0 <= stamp_us <= MAX_QUEUE_ID_STAMP:
        raise RecordError(f"queue id stamp {stamp_us} out of range")
    digits = []
    for _ in range(QUEUE_ID_LENGTH):
        stamp_us, digit = divmod(stamp_us, 62)
        digits.append(QUEUE_ID_ALPHABET[digit])
    return "".join(reversed(digits))


def parse_queue_id(queue_id: str | bytes) -> int:
    """Return the microsecond stamp of a queue id; RecordError if it is not one."""
    raw = queue_id.encode("ascii", "replace") if isinstance(queue_id, str) else queue_id
    if len(raw) != QUEUE_ID_LENGTH:
        raise RecordError("queue id has the wrong length")
    stamp = 0
    for byte in raw:
        value = _DIGIT_VALUES.get(byte)
        if value is None:
            raise RecordError("queue id has a character outside base 62")
        stamp = stamp * 62 + value
    return stamp


def _check_queue_id_key(queue_id: bytes) -> None:
    if len(queue_id) != QUEUE_ID_LENGTH:
        raise RecordError("queue id has the wrong length")


def pack_rcpt_key(queue_id: bytes, index: int) -> bytes:
    _check_queue_id_key(queue_id)
    if not 0 <= index <= MAX_RECIPIENT_INDEX:
        raise RecordError("recipient index out of range")
    return bytes(queue_id) + _RCPT_INDEX.pack(index)


def unpack_rcpt_key(key: bytes | memoryview) -> tuple[bytes, int]:
    if len(key) != QUEUE_ID_LENGTH + 4:
        raise RecordError("recipient key has the wrong length")
    raw = bytes(key)
    return raw[:QUEUE_ID_LENGTH], _RCPT_INDEX.unpack_from(raw, QUEUE_ID_LENGTH)[0]


def pack_time_key(time_us: int, queue_id: bytes) -> bytes:
    _check_queue_id_key(queue_id)
    if not 0 <= time_us <= MAX_U64:
        raise RecordError("time out of range")
    return _TIME.pack(time_us) + bytes(queue_id)


def unpack_time_key(key: bytes | memoryview) -> tuple[int, bytes]:
    if len(key) != 8 + QUEUE_ID_LENGTH:
        raise RecordError("time key has the wrong length")
    raw = bytes(key)
    return _TIME.unpack_from(raw, 0)[0], raw[8:]


def _check_range(name: str, value: int, highest: int) -> None:
    if not 0 <= value <= highest:
        raise RecordError(f"{name} {value} out of range 0..{highest}")


def _append_field(parts: list[bytes], value: bytes) -> None:
    if len(value) > MAX_FIELD_BYTES:
        raise RecordError("field longer than a record can hold")
    parts.append(_LENGTH.pack(len(value)))
    parts.append(value)


def encode_envelope(
    arrival_us: int,
    size: int,
    rcpt_count: int,
    flags: int,
    body_type: int,
    dsn_ret: int,
    sender: bytes,
    envid: bytes,
    extras: Sequence[tuple[bytes, bytes]],
) -> bytes:
    """Return the envelope record; RecordError if a value does not fit its field."""
    _check_range("arrival time", arrival_us, MAX_U64)
    _check_range("size", size, MAX_U64)
    _check_range("recipient count", rcpt_count, MAX_RECIPIENT_INDEX)
    _check_range("flags", flags, MAX_FLAGS)
    _check_range("body type", body_type, MAX_BODY_TYPE)
    _check_range("DSN RET", dsn_ret, MAX_DSN_RET)
    if len(extras) > MAX_EXTRAS:
        raise RecordError("too many envelope extras")
    parts = [
        _ENVELOPE_HEAD.pack(
            ENVELOPE_MAGIC, RECORD_VERSION, arrival_us, size, rcpt_count, flags, body_type, dsn_ret
        )
    ]
    _append_field(parts, sender)
    _append_field(parts, envid)
    parts.append(_COUNT.pack(len(extras)))
    for name, value in extras:
        _append_field(parts, name)
        _append_field(parts, value)
    return b"".join(parts)


class _Reader:
    """A cursor over one record that refuses to read past its end."""

    __slots__ = ("data", "position")

    def __init__(self, data: bytes | memoryview, start: int) -> None:
        self.data = data
        self.position = start

    def field(self) -> bytes:
        start = self.position + 4
        if start > len(self.data):
            raise RecordError("record truncated in a length prefix")
        length = _LENGTH.unpack_from(self.data, self.position)[0]
        end = start + length
        if end > len(self.data):
            raise RecordError("field length runs past the end of the record")
        self.position = end
        return bytes(self.data[start:end])

    def count(self) -> int:
        if self.position + 2 > len(self.data):
            raise RecordError("record truncated in a count")
        value: int = _COUNT.unpack_from(self.data, self.position)[0]
        self.position += 2
        return value

    def finish(self) -> None:
        if self.position != len(self.data):
            raise RecordError("trailing bytes after the record")


def _head(data: bytes | memoryview, head: struct.Struct, magic: int) -> tuple[int, ...]:
    if len(data) < head.size:
        raise RecordError("record shorter than its fixed header")
    fields = head.unpack_from(data, 0)
    if fields[0] != magic:
        raise RecordError("record has the wrong type byte")
    if fields[1] != RECORD_VERSION:
        raise RecordError(f"record version {fields[1]} is not {RECORD_VERSION}")
    return fields


def decode_envelope(data: bytes | memoryview) -> EnvelopeFields:
    """Return (arrival_us, size, rcpt_count, flags, body_type, dsn_ret, sender, envid, extras)."""
    _, _, arrival_us, size, rcpt_count, flags, body_type, dsn_ret = _head(
        data, _ENVELOPE_HEAD, ENVELOPE_MAGIC
    )
    _check_range("body type", body_type, MAX_BODY_TYPE)
    _check_range("DSN RET", dsn_ret, MAX_DSN_RET)
    reader = _Reader(data, _ENVELOPE_HEAD.size)
    sender = reader.field()
    envid = reader.field()
    extras = [(reader.field(), reader.field()) for _ in range(reader.count())]
    reader.finish()
    return arrival_us, size, rcpt_count, flags, body_type, dsn_ret, sender, envid, extras


def encode_recipient(
    notify: int,
    status: int,
    attempts: int,
    next_try_us: int,
    address: bytes,
    orig_address: bytes,
    orcpt: bytes,
    dsn: bytes,
    reason: bytes,
) -> bytes:
    """Return the recipient record; RecordError if a value does not fit its field."""
    _check_range("NOTIFY", notify, MAX_NOTIFY)
    _check_range("status", status, MAX_STATUS)
    _check_range("attempts", attempts, 0xFFFFFFFF)
    _check_range("next try", next_try_us, MAX_U64)
    parts = [
        _RECIPIENT_HEAD.pack(RECIPIENT_MAGIC, RECORD_VERSION, notify, status, attempts, next_try_us)
    ]
    for value in (address, orig_address, orcpt, dsn, reason):
        _append_field(parts, value)
    return b"".join(parts)


def decode_recipient(data: bytes | memoryview) -> RecipientFields:
    """Return (notify, status, attempts, next_try_us, address, orig_address, orcpt, dsn, reason)."""
    _, _, notify, status, attempts, next_try_us = _head(data, _RECIPIENT_HEAD, RECIPIENT_MAGIC)
    _check_range("NOTIFY", notify, MAX_NOTIFY)
    _check_range("status", status, MAX_STATUS)
    reader = _Reader(data, _RECIPIENT_HEAD.size)
    address = reader.field()
    orig_address = reader.field()
    orcpt = reader.field()
    dsn = reader.field()
    reason = reader.field()
    reader.finish()
    return notify, status, attempts, next_try_us, address, orig_address, orcpt, dsn, reason


def encode_recipients(
    queue_id: bytes, recipients: Sequence[RecipientFields]
) -> list[tuple[bytes, bytes]]:
    """Return the (key, record) pairs of a message's recipients, indexed from 0, for putmulti."""
    return [
        (pack_rcpt_key(queue_id, index), encode_recipient(*fields))
        for index, fields in enumerate(recipients)
    ]


def decode_recipients(
    queue_id: bytes, items: Iterable[tuple[bytes | memoryview, bytes | memoryview]]
) -> list[IndexedRecipient]:
    """Decode the (key, record) pairs of one message, as a cursor yields them, to (index, fields).

    Stops at the first key that does not start with queue_id, so a cursor positioned at the
    message's first recipient can be handed over as it is; the rest of its keys are not read.
    """
    _check_queue_id_key(queue_id)
    decoded = []
    for key, value in items:
        if bytes(key[:QUEUE_ID_LENGTH]) != queue_id:
            break
        decoded.append((unpack_rcpt_key(key)[1], decode_recipient(value)))
    return decoded
