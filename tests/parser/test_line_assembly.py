"""Line assembly and the bounds on every buffer: command lines, text lines, pending input."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotpath.events import (
    DataChunk,
    EndOfData,
    Hello,
    InputOverflow,
    Mail,
    Noop,
    ProtocolError,
    ServerLimits,
    StartTls,
)

from .driver import ENVELOPE, Session, events_of, reply_with, run, split_at
from .strategies import cuts, sessions

TRANSACTION = (
    ENVELOPE + b"DATA\r\nSubject: t\r\n\r\n..dotted\r\nline\r\n.\r\n"
    b"BDAT 5\r\nab\r\ncBDAT 0 LAST\r\nNOOP\r\nQUIT\r\n"
)


def test_one_byte_at_a_time_gives_the_same_events_as_all_at_once(impl: ModuleType) -> None:
    whole = events_of(impl, [TRANSACTION])
    bytewise = events_of(impl, [TRANSACTION[i : i + 1] for i in range(len(TRANSACTION))])
    assert bytewise == whole
    assert EndOfData(29, 0) in whole[0]


def test_crlf_split_between_cr_and_lf_still_ends_the_line(impl: ModuleType) -> None:
    session = Session(impl)
    assert session.feed(b"NOOP\r") == []
    assert session.feed(b"\n") == [Noop()]


def test_end_of_data_split_in_every_place_still_ends_the_message(impl: ModuleType) -> None:
    data = ENVELOPE + b"DATA\r\nbody\r\n.\r\nNOOP\r\n"
    expected = events_of(impl, [data])
    for cut in range(len(data) + 1):
        assert events_of(impl, [data[:cut], data[cut:]]) == expected


SPLIT_LIMITS = (
    ServerLimits(),
    ServerLimits(bare_newline="normal"),
    ServerLimits(
        command_line_limit=64,
        auth_line_limit=80,
        message_size_limit=40,
        recipient_limit=2,
        strict_envelope=True,
        helo_required=True,
    ),
)


@settings(max_examples=300, deadline=None)
@given(data=sessions(), cut_points=cuts, limits=st.sampled_from(SPLIT_LIMITS))
def test_any_split_of_any_input_gives_the_same_events(
    impl: ModuleType, data: bytes, cut_points: list[int], limits: ServerLimits
) -> None:
    # A 220 to STARTTLS discards pipelined input by design, which depends on the split.
    scripted = reply_with({StartTls: 454})
    whole = events_of(impl, [data], limits, scripted)
    assert events_of(impl, split_at(data, cut_points), limits, scripted) == whole


# -- command lines -------------------------------------------------------------------------


def test_command_line_exactly_at_the_limit_is_accepted(impl: ModuleType) -> None:
    line = b"HELO " + b"h" * (512 - 7) + b"\r\n"
    assert len(line) == 512
    assert run(impl, line).events == [Hello("HELO", "h" * 505)]


def test_command_line_one_over_the_limit_is_refused_and_session_goes_on(impl: ModuleType) -> None:
    line = b"HELO " + b"h" * (512 - 6) + b"\r\n"
    session = run(impl, line + b"NOOP\r\n")
    assert session.events == [ProtocolError(500, "5.5.2", "Error: line too long"), Noop()]
    assert session.replies[1] == "500 5.5.2 Error: line too long"


def test_command_line_limit_is_configurable(impl: ModuleType) -> None:
    limits = ServerLimits(command_line_limit=100)
    at_limit = b"HELO " + b"h" * 93 + b"\r\n"
    assert run(impl, at_limit, limits).events == [Hello("HELO", "h" * 93)]
    over = b"HELO " + b"h" * 94 + b"\r\n"
    assert run(impl, over, limits).events[0] == ProtocolError(500, "5.5.2", "Error: line too long")


def test_ten_megabytes_without_lf_does_not_grow_the_buffer(impl: ModuleType) -> None:
    session = Session(impl)
    block = b"x" * 65536
    for _ in range(160):
        assert session.feed(block) == []
        assert session.engine.buffered <= 512
    assert session.feed(b"\r\nNOOP\r\n") == [
        ProtocolError(500, "5.5.2", "Error: line too long"),
        Noop(),
    ]


def test_over_long_line_ending_in_bare_lf_is_still_a_bare_lf(impl: ModuleType) -> None:
    session = Session(impl)
    session.feed(b"x" * 600)
    assert session.feed(b"\nNOOP\r\n") == [
        ProtocolError(521, "5.5.2", "Error: bare <LF> received", True)
    ]
    assert session.engine.closed


def test_over_long_line_with_cr_and_lf_in_separate_reads_is_one_line(impl: ModuleType) -> None:
    session = Session(impl)
    session.feed(b"x" * 600 + b"\r")
    assert session.feed(b"\nNOOP\r\n")[1:] == [Noop()]


# -- pending input -------------------------------------------------------------------------


def test_input_over_the_buffer_limit_raises_input_overflow_with_its_reply(impl: ModuleType) -> None:
    limits = ServerLimits(input_buffer_limit=20000)
    session = Session(impl, limits)
    session.engine.receive_data(b"NOOP\r\n" * 3000)
    before = session.engine.buffered
    with pytest.raises(InputOverflow) as raised:
        session.engine.receive_data(b"NOOP\r\n" * 400)
    assert raised.value.reply == b"421 4.7.0 Error: too much pipelined input\r\n"
    assert session.engine.buffered == before


def test_input_up_to_the_buffer_limit_is_accepted(impl: ModuleType) -> None:
    limits = ServerLimits(input_buffer_limit=20000)
    session = Session(impl, limits)
    session.engine.receive_data(b"NOOP\r\n" * 3000 + b"N" * 2000)
    assert session.engine.buffered == 20000


def test_draining_events_makes_room_for_more_input(impl: ModuleType) -> None:
    limits = ServerLimits(input_buffer_limit=20000)
    session = Session(impl, limits)
    session.feed(b"NOOP\r\n" * 3000)
    session.feed(b"NOOP\r\n" * 3000)
    assert session.events.count(Noop()) == 6000


# -- text lines ----------------------------------------------------------------------------


def test_text_line_at_the_limit_is_not_counted_long(impl: ModuleType) -> None:
    line = b"t" * 998 + b"\r\n"
    session = run(impl, ENVELOPE + b"DATA\r\n" + line + b".\r\n")
    assert session.events[-1] == EndOfData(1000, 0)


def test_text_line_over_the_limit_is_kept_whole_and_counted(impl: ModuleType) -> None:
    line = b"t" * 999 + b"\r\n"
    session = run(impl, ENVELOPE + b"DATA\r\n" + line + line + b"short\r\n.\r\n")
    assert session.content == line + line + b"short\r\n"
    assert session.events[-1] == EndOfData(2009, 2)


def test_text_line_limit_is_configurable(impl: ModuleType) -> None:
    limits = ServerLimits(text_line_limit=2000)
    session = run(impl, ENVELOPE + b"DATA\r\n" + b"t" * 1500 + b"\r\n.\r\n", limits)
    assert session.events[-1] == EndOfData(1502, 0)


def test_five_megabyte_line_is_streamed_not_buffered(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\n")
    block = b"y" * 65536
    for _ in range(80):
        session.feed(block)
        assert session.engine.buffered <= 3
    session.feed(b"\r\n.\r\n")
    assert session.events[-1] == EndOfData(80 * 65536 + 2, 1)
    assert sum(len(e.data) for e in session.events if isinstance(e, DataChunk)) == 80 * 65536 + 2


def test_pipelined_commands_are_read_after_the_reply_to_the_one_before(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"RSET\r\nMAIL FROM:<x@y>\r\n")
    assert session.events[-1] == Mail("x@y")
