"""The record codec, run against both twins: round-trips, injection and corrupt input."""

from __future__ import annotations

import contextlib
import importlib
import os
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hotpath.queue

NASTY = b"\r\n.\r\n\x00\x00\x00\x05MAIL\xff\xfe" + (4).to_bytes(4, "big") + b"R\x01"

field_bytes = st.binary(max_size=300)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
envelopes = st.tuples(
    u64,
    u64,
    u32,
    st.integers(0, 255),
    st.integers(0, 3),
    st.integers(0, 2),
    field_bytes,
    field_bytes,
    st.lists(st.tuples(field_bytes, field_bytes), max_size=5),
)
recipients = st.tuples(
    st.integers(0, 15),
    st.integers(0, 3),
    u32,
    u64,
    field_bytes,
    field_bytes,
    field_bytes,
    field_bytes,
    field_bytes,
)
QUEUE_ID = b"08DtbFwZoK"


def sample_envelope(codec: ModuleType) -> bytes:
    record: bytes = codec.encode_envelope(
        1, 2, 3, 1, 2, 1, b"a@b", b"envid", [(b"client_name", b"host")]
    )
    return record


def sample_recipient(codec: ModuleType) -> bytes:
    record: bytes = codec.encode_recipient(
        12, 1, 3, 99, b"x@y", b"X@y", b"rfc822;x@y", b"4.4.1", b"r"
    )
    return record


@settings(max_examples=150, deadline=None)
@given(fields=envelopes)
def test_envelope_round_trips(codec: ModuleType, fields: tuple[object, ...]) -> None:
    record = codec.encode_envelope(*fields)
    assert codec.decode_envelope(record) == fields
    assert codec.decode_envelope(memoryview(record)) == fields


@settings(max_examples=150, deadline=None)
@given(fields=recipients)
def test_recipient_round_trips(codec: ModuleType, fields: tuple[object, ...]) -> None:
    record = codec.encode_recipient(*fields)
    assert codec.decode_recipient(record) == fields
    assert codec.decode_recipient(memoryview(record)) == fields


@settings(max_examples=100, deadline=None)
@given(fields=st.one_of(envelopes, recipients))
def test_both_twins_write_identical_bytes(fields: tuple[object, ...]) -> None:
    twins = [importlib.import_module("hotpath._queue_py")]
    if os.environ.get("MTA_NO_EXTENSIONS") != "1":
        twins.append(importlib.import_module("hotpath._queue"))
    encoder = "encode_envelope" if isinstance(fields[-1], list) else "encode_recipient"
    assert len({getattr(twin, encoder)(*fields) for twin in twins}) == 1


def test_client_bytes_cannot_forge_fields(codec: ModuleType) -> None:
    """Exim's 21Nails: CR, LF, NUL and length-like bytes in a value stay inside that value."""
    envelope = (7, 8, 1, 0, 0, 0, NASTY, NASTY + NASTY, [(NASTY, b"\n"), (b"", NASTY)])
    assert codec.decode_envelope(codec.encode_envelope(*envelope)) == envelope
    recipient = (0, 0, 0, 0, NASTY, b"\r", b"\x00", NASTY, b"\r\n")
    assert codec.decode_recipient(codec.encode_recipient(*recipient)) == recipient


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0))
def test_truncated_records_raise_record_error(codec: ModuleType, cut: int) -> None:
    for record in (sample_envelope(codec), sample_recipient(codec)):
        with pytest.raises(codec.RecordError):
            codec.decode_envelope(record[: cut % len(record)]) if record[:1] == b"E" else (
                codec.decode_recipient(record[: cut % len(record)])
            )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupt_records_never_crash(codec: ModuleType, data: st.DataObject) -> None:
    """Flipped bytes either still decode or raise RecordError: no over-read, no other error."""
    for record, decode in (
        (sample_envelope(codec), codec.decode_envelope),
        (sample_recipient(codec), codec.decode_recipient),
    ):
        mutated = bytearray(record)
        for _ in range(data.draw(st.integers(1, 4))):
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
        with contextlib.suppress(codec.RecordError):
            decode(bytes(mutated))


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=64))
def test_random_bytes_raise_record_error_or_decode(codec: ModuleType, garbage: bytes) -> None:
    for decode in (codec.decode_envelope, codec.decode_recipient):
        with contextlib.suppress(codec.RecordError):
            decode(garbage)


def test_length_prefix_past_the_end_is_refused(codec: ModuleType) -> None:
    record = bytearray(sample_recipient(codec))
    record[16:20] = (2**32 - 1).to_bytes(4, "big")
    with pytest.raises(codec.RecordError, match="past the end"):
        codec.decode_recipient(bytes(record))


def test_trailing_bytes_are_refused(codec: ModuleType) -> None:
    with pytest.raises(codec.RecordError, match="trailing"):
        codec.decode_envelope(sample_envelope(codec) + b"\x00")


def test_wrong_type_byte_and_version_are_refused(codec: ModuleType) -> None:
    with pytest.raises(codec.RecordError, match="type byte"):
        codec.decode_envelope(sample_recipient(codec))
    record = bytearray(sample_envelope(codec))
    record[1] = 9
    with pytest.raises(codec.RecordError, match="version"):
        codec.decode_envelope(bytes(record))


def test_out_of_range_values_are_refused_on_encode(codec: ModuleType) -> None:
    with pytest.raises(codec.RecordError):
        codec.encode_envelope(-1, 0, 0, 0, 0, 0, b"", b"", [])
    with pytest.raises(codec.RecordError):
        codec.encode_envelope(0, 0, 0, 0, 4, 0, b"", b"", [])
    with pytest.raises(codec.RecordError):
        codec.encode_recipient(16, 0, 0, 0, b"", b"", b"", b"", b"")
    with pytest.raises(codec.RecordError):
        codec.encode_recipient(0, 0, 2**32, 0, b"", b"", b"", b"", b"")


def test_out_of_range_codes_are_refused_on_decode(codec: ModuleType) -> None:
    record = bytearray(sample_recipient(codec))
    record[3] = 200
    with pytest.raises(codec.RecordError, match="status"):
        codec.decode_recipient(bytes(record))


@settings(max_examples=200, deadline=None)
@given(stamp=st.integers(min_value=0, max_value=62**10 - 1))
def test_queue_id_round_trips_and_sorts(codec: ModuleType, stamp: int) -> None:
    queue_id = codec.format_queue_id(stamp)
    assert len(queue_id) == codec.QUEUE_ID_LENGTH
    assert codec.parse_queue_id(queue_id) == stamp
    assert codec.parse_queue_id(queue_id.encode()) == stamp
    if stamp:
        assert codec.format_queue_id(stamp - 1) < queue_id


@pytest.mark.parametrize("bad", ["", "short", "08DtbFwZo!", "08DtbFwZoKK", "../../etc/x"])
def test_malformed_queue_ids_are_refused(codec: ModuleType, bad: str) -> None:
    with pytest.raises(codec.RecordError):
        codec.parse_queue_id(bad)


def test_keys_pack_big_endian_and_round_trip(codec: ModuleType) -> None:
    assert codec.unpack_rcpt_key(codec.pack_rcpt_key(QUEUE_ID, 70000)) == (QUEUE_ID, 70000)
    assert codec.unpack_time_key(codec.pack_time_key(12345, QUEUE_ID)) == (12345, QUEUE_ID)
    assert codec.pack_time_key(255, QUEUE_ID) < codec.pack_time_key(256, QUEUE_ID)
    assert codec.pack_rcpt_key(QUEUE_ID, 255) < codec.pack_rcpt_key(QUEUE_ID, 256)
    with pytest.raises(codec.RecordError):
        codec.pack_rcpt_key(b"short", 0)
    with pytest.raises(codec.RecordError):
        codec.unpack_time_key(b"\x00" * 5)


def test_recipient_batch_round_trips_and_stops_at_next_message(codec: ModuleType) -> None:
    fields = [(4, 0, 0, 0, f"r{n}@x".encode(), b"", b"", b"", b"") for n in range(3)]
    pairs = codec.encode_recipients(QUEUE_ID, fields)
    assert [key for key, _ in pairs] == [codec.pack_rcpt_key(QUEUE_ID, n) for n in range(3)]
    other = codec.encode_recipients(b"08DtbFwZoL", fields[:1])
    decoded = codec.decode_recipients(QUEUE_ID, iter(pairs + other))
    assert decoded == list(enumerate(fields))
    assert codec.decode_recipients(QUEUE_ID, iter(other)) == []


def test_recipient_batch_refuses_a_bad_key_of_its_message(codec: ModuleType) -> None:
    with pytest.raises(codec.RecordError):
        codec.decode_recipients(QUEUE_ID, iter([(QUEUE_ID + b"\x00", b"R")]))


def test_both_twins_share_one_record_error(codec: ModuleType) -> None:
    assert codec.RecordError is hotpath.queue.RecordError


def test_facade_says_which_twin_it_uses() -> None:
    expected = os.environ.get("MTA_NO_EXTENSIONS") != "1"
    assert hotpath.queue.ACCELERATED is expected
