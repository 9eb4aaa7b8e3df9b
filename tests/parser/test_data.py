"""DATA: only CRLF.CRLF ends a message (SMTP smuggling), dot-unstuffing, size limit, octets."""

from __future__ import annotations

from types import ModuleType

from hotpath.events import (
    Data,
    DataChunk,
    EndOfData,
    Event,
    Mail,
    Noop,
    ProtocolError,
    Rcpt,
    ServerLimits,
)

from .driver import ENVELOPE, Session, run

BARE_LF = ProtocolError(521, "5.5.2", "Error: bare <LF> received", True)
NORMAL = ServerLimits(bare_newline="normal")
SMUGGLED = b"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
SMUGGLED += b"From: ceo@example.com\r\n\r\nsmuggled\r\n"


def _after(events: list[Event], kind: type[Event]) -> list[Event]:
    index = next(i for i, event in enumerate(events) if isinstance(event, kind))
    return events[index + 1 :]


def _assert_smuggling_stopped(impl: ModuleType, ending: bytes) -> None:
    """`ending` after the body must never end the message, in strict or normal mode."""
    message = ENVELOPE + b"DATA\r\nSubject: x\r\n\r\nbody" + ending + SMUGGLED + b".\r\n"
    # Strict (default): content, or 521 and the session ends; never a second transaction.
    strict = run(impl, message)
    after_data = _after(strict.events, Data)
    assert not any(isinstance(e, Mail | Rcpt | Data) for e in after_data)
    if b"\n" in ending.replace(b"\r\n", b""):
        assert after_data[-1] == BARE_LF
        assert strict.engine.closed
        assert strict.last_reply == "521 5.5.2 Error: bare <LF> received"
    else:
        assert after_data[-1] == EndOfData(len(strict.content), 0)
        assert b"MAIL FROM:<evil@attacker.example>" in strict.content
    # Normal: the bare line ends pass through as content; the real end is the only end.
    normal = run(impl, message, NORMAL)
    after_data = _after(normal.events, Data)
    assert [e for e in after_data if not isinstance(e, DataChunk)] == [
        EndOfData(len(normal.content), 0)
    ]
    assert b"MAIL FROM:<evil@attacker.example>" in normal.content


def test_smtp_smuggling_lf_dot_lf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\n.\n")


def test_smtp_smuggling_cr_dot_cr(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r.\r")


def test_smtp_smuggling_lf_dot_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\n.\r\n")


def test_smtp_smuggling_crlf_dot_lf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n.\n")


def test_smtp_smuggling_cr_dot_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r.\r\n")


def test_smtp_smuggling_crlf_dot_cr(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n.\r")


def test_smtp_smuggling_crlf_nul_dot_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n\x00.\r\n")


def test_smtp_smuggling_crlf_dot_nul_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n.\x00\r\n")


def test_smtp_smuggling_lf_dot_cr(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\n.\r")


def test_smtp_smuggling_crlf_dot_cr_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n.\r\r\n")


def test_smtp_smuggling_cr_lf_dot_lf_lf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n\n.\n")


def test_smtp_smuggling_lf_lf_dot_lf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\n\n.\n")


def test_smtp_smuggling_cr_cr_dot_cr_cr(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\r.\r\r")


def test_smtp_smuggling_crlf_space_dot_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n .\r\n")


def test_smtp_smuggling_crlf_dot_space_crlf(impl: ModuleType) -> None:
    _assert_smuggling_stopped(impl, b"\r\n. \r\n")


def test_smtp_smuggling_crlf_dot_lf_split_across_reads(impl: ModuleType) -> None:
    session = Session(impl, NORMAL)
    session.feed(ENVELOPE + b"DATA\r\nbody\r\n.")
    session.feed(b"\n" + SMUGGLED)
    assert not any(isinstance(e, EndOfData | Mail) for e in _after(session.events, Data))


def test_bare_lf_in_data_is_refused_with_521_and_closes(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\nline one\nline two\r\n.\r\nNOOP\r\n")
    assert session.events[-2:] == [DataChunk(b"line one"), BARE_LF]
    assert session.engine.closed


def test_bare_lf_in_data_past_the_size_limit_is_refused_at_once(impl: ModuleType) -> None:
    session = Session(impl, ServerLimits(message_size_limit=10))
    session.feed(ENVELOPE + b"DATA\r\n0123456789abcdef\r\n")
    assert session.feed(b"more\nxx") == [BARE_LF]


def test_bare_lf_in_data_is_content_in_normal_mode(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\na\nb\r\n.\r\n", NORMAL)
    assert session.content == b"a\nb\r\n"
    assert session.events[-1] == EndOfData(5, 0)


def test_bare_cr_is_content(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\na\rb\r\r\n\r.\r\n.\r\n")
    assert session.content == b"a\rb\r\r\n\r.\r\n"


def test_only_crlf_dot_crlf_ends_data(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\nbody\r\n.\r\nNOOP\r\n")
    assert session.events[-3:] == [DataChunk(b"body\r\n"), EndOfData(6, 0), Noop()]
    assert session.replies[-2:] == ["250 2.0.0 Ok: queued", "250 2.0.0 Ok"]


def test_empty_message_ends_at_once(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\n.\r\n")
    assert session.events[-1] == EndOfData(0, 0)


def test_lines_after_end_of_data_are_commands_again(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\n.\r\nMAIL FROM:<a@b>\r\n")
    assert session.events[-1] == Mail("a@b")


# -- dot-unstuffing ------------------------------------------------------------------------

UNSTUFFING = [
    (b"..x\r\n", b".x\r\n"),
    (b"..\r\n", b".\r\n"),
    (b"...\r\n", b"..\r\n"),
    (b".x\r\n", b"x\r\n"),
    (b"a\r\n..b\r\n", b"a\r\n.b\r\n"),
    (b"a.\r\n", b"a.\r\n"),
    (b" .\r\n", b" .\r\n"),
    (b"a\r..b\r\n", b"a\r..b\r\n"),
]


def test_dot_unstuffing_table(impl: ModuleType) -> None:
    for sent, kept in UNSTUFFING:
        session = run(impl, ENVELOPE + b"DATA\r\n" + sent + b".\r\n")
        assert (session.content, session.events[-1]) == (kept, EndOfData(len(kept), 0)), sent


def test_dot_stuffed_first_line_is_unstuffed(impl: ModuleType) -> None:
    assert run(impl, ENVELOPE + b"DATA\r\n..first\r\n.\r\n").content == b".first\r\n"


def test_lone_double_dot_line_is_one_dot(impl: ModuleType) -> None:
    assert run(impl, ENVELOPE + b"DATA\r\nx\r\n..\r\n.\r\n").content == b"x\r\n.\r\n"


def test_eight_bit_nul_and_control_octets_pass_unchanged(impl: ModuleType) -> None:
    body = bytes(range(256)).replace(b"\n", b"") + b"\r\n\x00\x00\r\n\xff\xfe\r\n"
    assert run(impl, ENVELOPE + b"DATA\r\n" + body + b".\r\n").content == body


# -- message_size_limit --------------------------------------------------------------------


def test_content_over_the_size_limit_is_cut_at_exactly_the_limit(impl: ModuleType) -> None:
    limits = ServerLimits(message_size_limit=20)
    session = run(impl, ENVELOPE + b"DATA\r\n" + b"0123456789\r\n" * 5 + b".\r\nNOOP\r\n", limits)
    assert session.content == (b"0123456789\r\n" * 5)[:20]
    assert session.events[-2:] == [
        ProtocolError(552, "5.3.4", "Error: message file too big"),
        Noop(),
    ]
    assert not session.engine.in_transaction


def test_content_exactly_at_the_size_limit_is_accepted(impl: ModuleType) -> None:
    limits = ServerLimits(message_size_limit=24)
    session = run(impl, ENVELOPE + b"DATA\r\n" + b"0123456789\r\n" * 2 + b".\r\n", limits)
    assert session.events[-1] == EndOfData(24, 0)


def test_size_limit_counts_octets_after_unstuffing(impl: ModuleType) -> None:
    limits = ServerLimits(message_size_limit=4)
    assert run(impl, ENVELOPE + b"DATA\r\n..a\r\n.\r\n", limits).events[-1] == EndOfData(4, 0)


def test_size_limit_zero_means_no_limit(impl: ModuleType) -> None:
    limits = ServerLimits(message_size_limit=0)
    body = b"z" * 998 + b"\r\n"
    session = run(impl, ENVELOPE + b"DATA\r\n" + body * 50 + b".\r\n", limits)
    assert session.events[-1] == EndOfData(50000, 0)


def test_data_is_refused_before_rcpt_and_the_body_is_read_as_commands(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\nNOOP\r\n")
    assert session.events[-2:] == [ProtocolError(503, "5.5.1", "Error: need RCPT command"), Noop()]


def test_non_354_reply_to_data_keeps_the_engine_reading_commands(impl: ModuleType) -> None:
    from .driver import reply_with

    session = run(impl, ENVELOPE + b"DATA\r\nNOOP\r\n", replier=reply_with({Data: 451}))
    assert session.events[-1] == Noop()
