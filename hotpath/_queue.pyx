# cython: language_level=3, boundscheck=True, wraparound=False
"""Queue record codec, compiled: the same names and behaviour as hotpath/_queue_py.py.

See the twin for the record layouts. Encoding sizes the record once and fills one bytes object;
decoding reads straight from the caller's buffer (bytes, or the memoryview py-lmdb hands out
with buffers=True) through a typed memoryview, checking every length against the buffer before
it copies, so a corrupt record raises RecordError and is never read past its end.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

# One exception class for both twins, so callers catch the same RecordError whichever is in use.
from hotpath._queue_py import RecordError

ENVELOPE_MAGIC = 0x45
RECIPIENT_MAGIC = 0x52
RECORD_VERSION = 1
QUEUE_ID_LENGTH = 10
QUEUE_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_QUEUE_ID_STAMP = 62**10 - 1
MAX_FIELD_BYTES = 0xFFFFFFFF
MAX_EXTRAS = 0xFFFF
MAX_RECIPIENT_INDEX = 0xFFFFFFFF
MAX_U64 = 0xFFFFFFFFFFFFFFFF
MAX_BODY_TYPE = 3
MAX_DSN_RET = 2
MAX_NOTIFY = 0x0F
MAX_STATUS = 3
MAX_FLAGS = 0xFF

cdef enum:
    _ENVELOPE_HEAD = 25
    _RECIPIENT_HEAD = 16
    _ID_LEN = 10

cdef const char* _ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


cdef inline void _put_u32(char* out, uint32_t value) noexcept:
    out[0] = <char>(value >> 24)
    out[1] = <char>(value >> 16)
    out[2] = <char>(value >> 8)
    out[3] = <char>value


cdef inline void _put_u64(char* out, uint64_t value) noexcept:
    _put_u32(out, <uint32_t>(value >> 32))
    _put_u32(out + 4, <uint32_t>value)


cdef inline uint32_t _get_u32(const unsigned char* data) noexcept:
    return ((<uint32_t>data[0]) << 24) | ((<uint32_t>data[1]) << 16) | \
        ((<uint32_t>data[2]) << 8) | <uint32_t>data[3]


cdef inline uint64_t _get_u64(const unsigned char* data) noexcept:
    return ((<uint64_t>_get_u32(data)) << 32) | <uint64_t>_get_u32(data + 4)


cdef inline uint64_t _checked(str name, object value, object highest) except? 0xFFFFFFFFFFFFFFFF:
    if not 0 <= value <= highest:
        raise RecordError(f"{name} {value} out of range 0..{highest}")
    return <uint64_t>value


cdef inline Py_ssize_t _field_size(bytes value) except -1:
    if len(value) > MAX_FIELD_BYTES:
        raise RecordError("field longer than a record can hold")
    return 4 + len(value)


cdef inline char* _put_field(char* out, bytes value) noexcept:
    cdef Py_ssize_t length = len(value)
    _put_u32(out, <uint32_t>length)
    memcpy(out + 4, PyBytes_AS_STRING(value), length)
    return out + 4 + length


def format_queue_id(stamp_us):
    """Return the fixed-width base-62 queue id of a microsecond stamp (sorts like the stamp)."""
    if not 0 <= stamp_us <= MAX_QUEUE_ID_STAMP:
        raise RecordError(f"queue id stamp {stamp_us} out of range")
    cdef uint64_t stamp = stamp_us
    cdef char digits[_ID_LEN]
    cdef int position = _ID_LEN
    while position > 0:
        position -= 1
        digits[position] = _ALPHABET[stamp % 62]
        stamp //= 62
    return digits[:_ID_LEN].decode("ascii")


cdef inline int _digit_value(unsigned char byte) noexcept:
    if 48 <= byte <= 57:
        return byte - 48
    if 65 <= byte <= 90:
        return byte - 55
    if 97 <= byte <= 122:
        return byte - 61
    return -1


def parse_queue_id(queue_id):
    """Return the microsecond stamp of a queue id; RecordError if it is not one."""
    cdef bytes raw = queue_id.encode("ascii", "replace") if isinstance(queue_id, str) \
        else bytes(queue_id)
    if len(raw) != _ID_LEN:
        raise RecordError("queue id has the wrong length")
    cdef const unsigned char* digits = <const unsigned char*>PyBytes_AS_STRING(raw)
    cdef uint64_t stamp = 0
    cdef int position, value
    for position in range(_ID_LEN):
        value = _digit_value(digits[position])
        if value < 0:
            raise RecordError("queue id has a character outside base 62")
        stamp = stamp * 62 + <uint64_t>value
    return stamp


cdef inline int _check_queue_id_key(bytes queue_id) except -1:
    if len(queue_id) != _ID_LEN:
        raise RecordError("queue id has the wrong length")
    return 0


def pack_rcpt_key(bytes queue_id, index):
    _check_queue_id_key(queue_id)
    cdef uint32_t checked = <uint32_t>_checked("recipient index", index, MAX_RECIPIENT_INDEX)
    cdef bytes key = PyBytes_FromStringAndSize(NULL, _ID_LEN + 4)
    cdef char* out = PyBytes_AS_STRING(key)
    memcpy(out, PyBytes_AS_STRING(queue_id), _ID_LEN)
    _put_u32(out + _ID_LEN, checked)
    return key


def unpack_rcpt_key(const unsigned char[::1] key):
    if key.shape[0] != _ID_LEN + 4:
        raise RecordError("recipient key has the wrong length")
    cdef const unsigned char* raw = &key[0]
    return PyBytes_FromStringAndSize(<const char*>raw, _ID_LEN), _get_u32(raw + _ID_LEN)


def pack_time_key(time_us, bytes queue_id):
    _check_queue_id_key(queue_id)
    cdef uint64_t checked = _checked("time", time_us, MAX_U64)
    cdef bytes key = PyBytes_FromStringAndSize(NULL, 8 + _ID_LEN)
    cdef char* out = PyBytes_AS_STRING(key)
    _put_u64(out, checked)
    memcpy(out + 8, PyBytes_AS_STRING(queue_id), _ID_LEN)
    return key


def unpack_time_key(const unsigned char[::1] key):
    if key.shape[0] != 8 + _ID_LEN:
        raise RecordError("time key has the wrong length")
    cdef const unsigned char* raw = &key[0]
    return _get_u64(raw), PyBytes_FromStringAndSize(<const char*>(raw + 8), _ID_LEN)


def encode_envelope(arrival_us, size, rcpt_count, flags, body_type, dsn_ret,
                    bytes sender, bytes envid, extras):
    """Return the envelope record; RecordError if a value does not fit its field."""
    cdef uint64_t c_arrival = _checked("arrival time", arrival_us, MAX_U64)
    cdef uint64_t c_size = _checked("size", size, MAX_U64)
    cdef uint32_t c_rcpts = <uint32_t>_checked("recipient count", rcpt_count, MAX_RECIPIENT_INDEX)
    cdef uint8_t c_flags = <uint8_t>_checked("flags", flags, MAX_FLAGS)
    cdef uint8_t c_body = <uint8_t>_checked("body type", body_type, MAX_BODY_TYPE)
    cdef uint8_t c_ret = <uint8_t>_checked("DSN RET", dsn_ret, MAX_DSN_RET)
    cdef list pairs = list(extras)
    if len(pairs) > MAX_EXTRAS:
        raise RecordError("too many envelope extras")
    cdef Py_ssize_t total = _ENVELOPE_HEAD + _field_size(sender) + _field_size(envid) + 2
    cdef bytes name, value
    for name, value in pairs:
        total += _field_size(name) + _field_size(value)
    cdef bytes record = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = PyBytes_AS_STRING(record)
    out[0] = ENVELOPE_MAGIC
    out[1] = RECORD_VERSION
    _put_u64(out + 2, c_arrival)
    _put_u64(out + 10, c_size)
    _put_u32(out + 18, c_rcpts)
    out[22] = <char>c_flags
    out[23] = <char>c_body
    out[24] = <char>c_ret
    out = _put_field(out + _ENVELOPE_HEAD, sender)
    out = _put_field(out, envid)
    out[0] = <char>(len(pairs) >> 8)
    out[1] = <char>len(pairs)
    out += 2
    for name, value in pairs:
        out = _put_field(out, name)
        out = _put_field(out, value)
    return record


cdef class _Reader:
    """A cursor over one record that refuses to read past its end."""

    cdef const unsigned char[::1] data
    cdef const unsigned char* base
    cdef Py_ssize_t position
    cdef Py_ssize_t end

    cdef int start(self, const unsigned char[::1] data, Py_ssize_t head, int magic) except -1:
        self.data = data
        self.end = data.shape[0]
        if self.end < head:
            raise RecordError("record shorter than its fixed header")
        self.base = &data[0]
        if self.base[0] != magic:
            raise RecordError("record has the wrong type byte")
        if self.base[1] != RECORD_VERSION:
            raise RecordError(f"record version {self.base[1]} is not {RECORD_VERSION}")
        self.position = head
        return 0

    cdef bytes field(self):
        if self.end - self.position < 4:
            raise RecordError("record truncated in a length prefix")
        cdef uint64_t length = _get_u32(self.base + self.position)
        self.position += 4
        if length > <uint64_t>(self.end - self.position):
            raise RecordError("field length runs past the end of the record")
        cdef bytes value = PyBytes_FromStringAndSize(
            <const char*>(self.base + self.position), <Py_ssize_t>length)
        self.position += <Py_ssize_t>length
        return value

    cdef Py_ssize_t count(self) except -1:
        if self.end - self.position < 2:
            raise RecordError("record truncated in a count")
        cdef Py_ssize_t value = (self.base[self.position] << 8) | self.base[self.position + 1]
        self.position += 2
        return value

    cdef int finish(self) except -1:
        if self.position != self.end:
            raise RecordError("trailing bytes after the record")
        return 0


cdef inline int _check_code(str name, unsigned int value, unsigned int highest) except -1:
    if value > highest:
        raise RecordError(f"{name} {value} out of range 0..{highest}")
    return 0


def decode_envelope(const unsigned char[::1] data):
    """Return (arrival_us, size, rcpt_count, flags, body_type, dsn_ret, sender, envid, extras)."""
    cdef _Reader reader = _Reader.__new__(_Reader)
    reader.start(data, _ENVELOPE_HEAD, ENVELOPE_MAGIC)
    cdef const unsigned char* raw = reader.base
    _check_code("body type", raw[23], MAX_BODY_TYPE)
    _check_code("DSN RET", raw[24], MAX_DSN_RET)
    sender = reader.field()
    envid = reader.field()
    cdef Py_ssize_t extra_count = reader.count()
    cdef list extras = []
    while len(extras) < extra_count:
        name = reader.field()
        extras.append((name, reader.field()))
    reader.finish()
    return (_get_u64(raw + 2), _get_u64(raw + 10), _get_u32(raw + 18), raw[22], raw[23], raw[24],
            sender, envid, extras)


def encode_recipient(notify, status, attempts, next_try_us, bytes address, bytes orig_address,
                     bytes orcpt, bytes dsn, bytes reason):
    """Return the recipient record; RecordError if a value does not fit its field."""
    cdef uint8_t c_notify = <uint8_t>_checked("NOTIFY", notify, MAX_NOTIFY)
    cdef uint8_t c_status = <uint8_t>_checked("status", status, MAX_STATUS)
    cdef uint32_t c_attempts = <uint32_t>_checked("attempts", attempts, 0xFFFFFFFF)
    cdef uint64_t c_next = _checked("next try", next_try_us, MAX_U64)
    cdef Py_ssize_t total = (_RECIPIENT_HEAD + _field_size(address) + _field_size(orig_address)
                             + _field_size(orcpt) + _field_size(dsn) + _field_size(reason))
    cdef bytes record = PyBytes_FromStringAndSize(NULL, total)
    cdef char* out = PyBytes_AS_STRING(record)
    out[0] = RECIPIENT_MAGIC
    out[1] = RECORD_VERSION
    out[2] = <char>c_notify
    out[3] = <char>c_status
    _put_u32(out + 4, c_attempts)
    _put_u64(out + 8, c_next)
    out = _put_field(out + _RECIPIENT_HEAD, address)
    out = _put_field(out, orig_address)
    out = _put_field(out, orcpt)
    out = _put_field(out, dsn)
    _put_field(out, reason)
    return record


cdef tuple _decode_recipient(const unsigned char[::1] data):
    cdef _Reader reader = _Reader.__new__(_Reader)
    reader.start(data, _RECIPIENT_HEAD, RECIPIENT_MAGIC)
    cdef const unsigned char* raw = reader.base
    _check_code("NOTIFY", raw[2], MAX_NOTIFY)
    _check_code("status", raw[3], MAX_STATUS)
    address = reader.field()
    orig_address = reader.field()
    orcpt = reader.field()
    dsn = reader.field()
    reason = reader.field()
    reader.finish()
    return (raw[2], raw[3], _get_u32(raw + 4), _get_u64(raw + 8),
            address, orig_address, orcpt, dsn, reason)


def decode_recipient(data):
    """Return (notify, status, attempts, next_try_us, address, orig_address, orcpt, dsn, reason)."""
    return _decode_recipient(data)


def encode_recipients(bytes queue_id, recipients):
    """Return the (key, record) pairs of a message's recipients, indexed from 0, for putmulti."""
    _check_queue_id_key(queue_id)
    cdef list pairs = []
    cdef uint32_t index = 0
    cdef bytes key
    for fields in recipients:
        if index == 0xFFFFFFFF:
            raise RecordError("recipient index out of range")
        key = PyBytes_FromStringAndSize(NULL, _ID_LEN + 4)
        memcpy(PyBytes_AS_STRING(key), PyBytes_AS_STRING(queue_id), _ID_LEN)
        _put_u32(PyBytes_AS_STRING(key) + _ID_LEN, index)
        pairs.append((key, encode_recipient(*fields)))
        index += 1
    return pairs


def decode_recipients(bytes queue_id, items):
    """Decode the (key, record) pairs of one message, as a cursor yields them, to (index, fields).

    Stops at the first key that does not start with queue_id, so a cursor positioned at the
    message's first recipient can be handed over as it is; the rest of its keys are not read.
    """
    _check_queue_id_key(queue_id)
    cdef const unsigned char* wanted = <const unsigned char*>PyBytes_AS_STRING(queue_id)
    cdef const unsigned char[::1] key_view
    cdef list decoded = []
    for key, value in items:
        key_view = key
        if key_view.shape[0] < _ID_LEN or memcmp(&key_view[0], wanted, _ID_LEN) != 0:
            break
        if key_view.shape[0] != _ID_LEN + 4:
            raise RecordError("recipient key has the wrong length")
        decoded.append((_get_u32(&key_view[0] + _ID_LEN), _decode_recipient(value)))
    return decoded
