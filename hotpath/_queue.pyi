"""Type stub of hotpath._queue, the compiled twin of hotpath._queue_py (same API)."""

from collections.abc import Iterable, Sequence

from hotpath._queue_py import EnvelopeFields, IndexedRecipient, RecipientFields
from hotpath._queue_py import RecordError as RecordError

ENVELOPE_MAGIC: int
RECIPIENT_MAGIC: int
RECORD_VERSION: int
QUEUE_ID_LENGTH: int
QUEUE_ID_ALPHABET: str
MAX_QUEUE_ID_STAMP: int
MAX_FIELD_BYTES: int
MAX_EXTRAS: int
MAX_RECIPIENT_INDEX: int
MAX_U64: int
MAX_BODY_TYPE: int
MAX_DSN_RET: int
MAX_NOTIFY: int
MAX_STATUS: int
MAX_FLAGS: int

def format_queue_id(stamp_us: int) -> str: ...
def parse_queue_id(queue_id: str | bytes) -> int: ...
def pack_rcpt_key(queue_id: bytes, index: int) -> bytes: ...
def unpack_rcpt_key(key: bytes | memoryview) -> tuple[bytes, int]: ...
def pack_time_key(time_us: int, queue_id: bytes) -> bytes: ...
def unpack_time_key(key: bytes | memoryview) -> tuple[int, bytes]: ...
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
) -> bytes: ...
def decode_envelope(data: bytes | memoryview) -> EnvelopeFields: ...
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
) -> bytes: ...
def decode_recipient(data: bytes | memoryview) -> RecipientFields: ...
def encode_recipients(
    queue_id: bytes, recipients: Sequence[RecipientFields]
) -> list[tuple[bytes, bytes]]: ...
def decode_recipients(
    queue_id: bytes, items: Iterable[tuple[bytes | memoryview, bytes | memoryview]]
) -> list[IndexedRecipient]: ...
