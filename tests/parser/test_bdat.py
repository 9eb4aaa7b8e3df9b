"""BDAT / CHUNKING and BINARYMIME (RFC 3030)."""

from __future__ import annotations

from types import ModuleType

from hotpath.events import (
    Bdat,
    DataChunk,
    EndOfChunk,
    EndOfData,
    Mail,
    Noop,
    ProtocolError,
    ServerLimits,
)

from .driver import ENVELOPE, Session, reply_with, run

NEED_RCPT = ProtocolError(503, "5.5.1", "Error: need RCPT command")
AFTER_BDAT = ProtocolError(503, "5.5.1", "Error: BDAT transaction in progress")
BDAT_SYNTAX = ProtocolError(501, "5.5.4", "Syntax: BDAT count [LAST]", True)
TOO_BIG = ProtocolError(552, "5.3.4", "Error: message file too big")


def test_bdat_chunks_then_last(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 3\r\nabcBDAT 2 LAST\r\nde")
    assert session.events[3:] == [
        Bdat(3, False),
        DataChunk(b"abc"),
        EndOfChunk(3),
        Bdat(2, True),
        DataChunk(b"de"),
        EndOfData(5, 0),
    ]
    assert session.replies[-2:] == ["250 2.0.0 Ok: queued", "250 2.0.0 Ok: queued"]
    assert not session.engine.in_transaction


def test_bdat_event_needs_no_reply_until_the_chunk_is_read(impl: ModuleType) -> None:
    session = Session(impl)
    session.feed(ENVELOPE)
    session.engine.receive_data(b"BDAT 4 LAST\r\nab")
    assert session.engine.next_event() == Bdat(4, True)
    assert not session.engine.awaiting_reply
    assert session.engine.next_event() == DataChunk(b"ab")
    assert session.engine.next_event() is None


def test_bdat_zero_last_ends_the_message(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 4\r\n1234BDAT 0 LAST\r\n")
    assert session.events[-2:] == [Bdat(0, True), EndOfData(4, 0)]


def test_bdat_last_keyword_is_case_insensitive(impl: ModuleType) -> None:
    assert run(impl, ENVELOPE + b"BDAT 1 last\r\nx").events[-1] == EndOfData(1, 0)


def test_bdat_chunk_with_crlf_dot_crlf_inside_is_binary_content(impl: ModuleType) -> None:
    payload = b"a\r\n.\r\nMAIL FROM:<x@y>\r\n\x00\xff\n\r"
    session = run(impl, ENVELOPE + b"BDAT %d LAST\r\n" % len(payload) + payload)
    assert session.content == payload
    assert session.events[-1] == EndOfData(len(payload), 0)


def test_binarymime_via_bdat_passes_arbitrary_bytes(impl: ModuleType) -> None:
    payload = bytes(range(256)) * 4
    session = run(
        impl,
        b"EHLO x\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<c@d>\r\n"
        + b"BDAT %d LAST\r\n" % len(payload)
        + payload,
    )
    assert session.events[1] == Mail("a@b", body="BINARYMIME")
    assert session.content == payload


def test_binarymime_refused_with_data(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert session.events[-1] == ProtocolError(503, "5.5.1", "Error: BINARYMIME requires BDAT")


def test_refused_bdat_still_reads_its_octets_then_answers_503(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nBDAT 6\r\nNOOP\r\nNOOP\r\n")
    assert session.events[1:] == [NEED_RCPT, Noop()]


def test_refused_bdat_without_mail_reads_octets_split_across_reads(impl: ModuleType) -> None:
    session = Session(impl)
    session.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nBDAT 12 LAST\r\nQUIT\r")
    assert session.feed(b"\nQUIT\r\nNOOP\r\n") == [NEED_RCPT, Noop()]


def test_bdat_syntax_error_closes_the_session(impl: ModuleType) -> None:
    for command in (b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT 1 2", b"BDAT 1 LAST x", b"BDAT 1  LAST"):
        session = run(impl, ENVELOPE + command + b"\r\nNOOP\r\n")
        assert session.events[-1] == BDAT_SYNTAX, command
        assert session.engine.closed


def test_bdat_size_over_eighteen_digits_is_a_syntax_error(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 1234567890123456789\r\n")
    assert session.events[-1] == BDAT_SYNTAX


def test_data_after_bdat_is_refused(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 1\r\nxDATA\r\n")
    assert session.events[-1] == AFTER_BDAT


def test_rcpt_after_bdat_is_refused(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 1\r\nxRCPT TO:<z@z>\r\n")
    assert session.events[-1] == AFTER_BDAT


def test_size_accounting_spans_chunks(impl: ModuleType) -> None:
    limits = ServerLimits(message_size_limit=10)
    session = run(impl, ENVELOPE + b"BDAT 6\r\n123456BDAT 6 LAST\r\n789abcNOOP\r\n", limits)
    assert session.events[3:] == [
        Bdat(6, False),
        DataChunk(b"123456"),
        EndOfChunk(6),
        Bdat(6, True),
        DataChunk(b"789a"),
        TOO_BIG,
        Noop(),
    ]


def test_bdat_over_the_size_limit_reads_the_rest_and_answers_552(impl: ModuleType) -> None:
    limits = ServerLimits(message_size_limit=4)
    session = run(impl, ENVELOPE + b"BDAT 8\r\n12345678NOOP\r\n", limits)
    assert session.events[-3:] == [DataChunk(b"1234"), TOO_BIG, Noop()]
    assert session.replies[-2] == "552 5.3.4 Error: message file too big"
    assert not session.engine.in_transaction


def test_bdat_after_a_refused_chunk_is_refused_too(impl: ModuleType) -> None:
    replier = reply_with({EndOfChunk: 554})
    session = run(impl, ENVELOPE + b"BDAT 1\r\nxBDAT 1 LAST\r\nyNOOP\r\n", replier=replier)
    assert session.events[-2:] == [NEED_RCPT, Noop()]


def test_new_transaction_after_bdat_last(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 1 LAST\r\nx" + b"MAIL FROM:<n@m>\r\n")
    assert session.events[-1] == Mail("n@m")


def test_end_of_input_inside_a_chunk_closes(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"BDAT 10\r\nabc")
    session.close()
    assert session.engine.closed
