"""The delivery protocol: round trips, split input, and malformed or oversized frames."""

from __future__ import annotations

import struct

import pytest

from mta.proto.delivery import (
    DeliveryLimits,
    DeliveryRequest,
    DeliveryResult,
    FrameDecoder,
    Goodbye,
    Handoff,
    Outcome,
    ProtocolError,
    RecipientOutcome,
    RequestRecipient,
    encode_goodbye,
    encode_request,
    encode_result,
)
from mta.proto.logline import format_delay

REQUEST = DeliveryRequest(
    7,
    "08DtcfMP6P",
    "example.com",
    "a@b.test\r\nX: y",
    1.5,
    2.25,
    (
        RequestRecipient(0, "x@example.com", "X@example.com", "rfc822;x@example.com", 4),
        RequestRecipient(3, "\udcff@example.com"),
    ),
)
RESULT = DeliveryResult(
    7,
    (
        RecipientOutcome(0, Outcome.SENT, "2.0.0", "none", "ok"),
        RecipientOutcome(1, Outcome.SENT, "2.0.0", "mx", "ok", Handoff.RELAYED),
        RecipientOutcome(2, Outcome.DEFERRED, "4.4.1", "none", "refused", site_failure=True),
    ),
)


def test_frames_round_trip_even_one_byte_at_a_time() -> None:
    data = encode_request(REQUEST) + encode_result(RESULT) + encode_goodbye(Goodbye(7))
    decoder = FrameDecoder()
    frames = []
    for offset in range(len(data)):
        frames += decoder.feed(data[offset : offset + 1])
    assert frames == [REQUEST, RESULT, Goodbye(7)]
    assert decoder.pending == 0


def test_length_prefix_over_the_limit_is_refused_before_buffering() -> None:
    decoder = FrameDecoder(DeliveryLimits(max_frame_bytes=100))
    with pytest.raises(ProtocolError):
        decoder.feed(struct.pack(">I", 101))


def test_field_length_pointing_past_the_frame_is_refused() -> None:
    payload = bytearray(encode_request(REQUEST)[4:])
    payload[21:25] = struct.pack(">I", 10_000)
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x09\x00\x00\x00\x01",
        encode_goodbye(Goodbye(1))[4:] + b"x",
        b"\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x07\x00\x00",
        b"\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x09\x00",
        b"\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x01\x00\x02",
    ],
    ids=[
        "empty",
        "unknown-kind",
        "trailing-bytes",
        "unknown-outcome",
        "unknown-handoff",
        "bad-site-failure",
    ],
)
def test_malformed_frames_raise_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)


def test_too_many_recipients_is_refused() -> None:
    data = encode_request(REQUEST)
    with pytest.raises(ProtocolError):
        FrameDecoder(DeliveryLimits(max_recipients=1)).feed(data)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0"),
        (0.004, "0"),
        (0.1, "0.1"),
        (0.123, "0.12"),
        (1.25, "1.2"),
        (4.0, "4"),
        (14.4, "14"),
        (317.2, "317"),
    ],
)
def test_delays_print_like_postfix(seconds: float, text: str) -> None:
    assert format_delay(seconds) == text
