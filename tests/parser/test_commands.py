"""Every command, the session state machine, PIPELINING groups, STARTTLS and AUTH."""

from __future__ import annotations

from types import ModuleType

import pytest

from hotpath.events import (
    Auth,
    AuthResponse,
    ConnectionClosed,
    Data,
    Etrn,
    Event,
    Expn,
    Hello,
    Help,
    Mail,
    Noop,
    ProtocolError,
    Quit,
    Rcpt,
    Rset,
    ServerLimits,
    StartTls,
    Vrfy,
)

from .driver import ENVELOPE, Session, reply_with, run

SYNTAX = ProtocolError(500, "5.5.2", "Error: bad syntax")
UNKNOWN = ProtocolError(502, "5.5.2", "Error: command not recognized")
NEED_MAIL = ProtocolError(503, "5.5.1", "Error: need MAIL command")
NEED_RCPT = ProtocolError(503, "5.5.1", "Error: need RCPT command")
NESTED = ProtocolError(503, "5.5.1", "Error: nested MAIL command")
SEND_HELO = ProtocolError(503, "5.5.1", "Error: send HELO/EHLO first")
SEND_EHLO = ProtocolError(503, "5.5.1", "Error: send EHLO first")
IN_TRANSACTION = ProtocolError(503, "5.5.1", "Error: MAIL transaction in progress")
NO_SERVICE = ProtocolError(503, "5.5.1", "Error: no valid greeting; send QUIT")


def _usage(text: str) -> ProtocolError:
    return ProtocolError(501, "5.5.4", f"Syntax: {text}")


# Each row: a command line sent after EHLO, and the one event it gives.
COMMAND_TABLE: list[tuple[bytes, Event]] = [
    (b"EHLO client.example", Hello("EHLO", "client.example")),
    (b"HELO client.example", Hello("HELO", "client.example")),
    (b"ehlo  spaced.example ", Hello("EHLO", "spaced.example")),
    (b"EHLO", _usage("EHLO hostname")),
    (b"HELO \xc3\xa9.example", _usage("HELO hostname")),
    (b"MAIL FROM:<a@b>", Mail("a@b")),
    (b"mail from:<a@b>", Mail("a@b")),
    (b"MAIL TO:<a@b>", _usage("MAIL FROM:<address>")),
    (b"RCPT TO:<a@b>", NEED_MAIL),
    (b"DATA", NEED_RCPT),
    (b"DATA now", _usage("DATA")),
    (b"RSET", Rset()),
    (b"RSET x", _usage("RSET")),
    (b"NOOP", Noop()),
    (b"NOOP anything", Noop()),
    (b"QUIT", Quit()),
    (b"VRFY postmaster", Vrfy("postmaster")),
    (b"VRFY", _usage("VRFY address")),
    (b"EXPN staff", Expn("staff")),
    (b"EXPN", _usage("EXPN address")),
    (b"HELP", Help("")),
    (b"HELP MAIL", Help("MAIL")),
    (b"STARTTLS", StartTls()),
    (b"STARTTLS now", _usage("STARTTLS")),
    (b"AUTH PLAIN", Auth("PLAIN")),
    (b"auth plain dGVzdA==", Auth("PLAIN", "dGVzdA==")),
    (b"AUTH CRAM-MD5", Auth("CRAM-MD5")),
    (b"AUTH", _usage("AUTH mechanism")),
    (b"AUTH PL@IN", _usage("AUTH mechanism")),
    (b"AUTH " + b"X" * 21, _usage("AUTH mechanism")),
    (b"AUTH PLAIN a b", _usage("AUTH mechanism")),
    (b"ETRN example.org", Etrn("example.org")),
    (b"ETRN", _usage("ETRN domain")),
    (b"XYZZY", UNKNOWN),
    (b"", UNKNOWN),
    (b"MAILFROM:<a@b>", UNKNOWN),
    (b"NOOP\x00", SYNTAX),
    (b"NO\tOP", SYNTAX),
    (b"NOOP\x7f", SYNTAX),
]


def test_every_command_is_parsed(impl: ModuleType) -> None:
    for line, expected in COMMAND_TABLE:
        session = run(impl, b"EHLO x\r\n" + line + b"\r\n")
        assert session.events[1:] == [expected], line


def test_protocol_error_reply_carries_code_status_and_text(impl: ModuleType) -> None:
    session = run(impl, b"XYZZY\r\n")
    assert session.last_reply == "502 5.5.2 Error: command not recognized"


# -- state machine -------------------------------------------------------------------------


def test_rcpt_before_mail_is_refused(impl: ModuleType) -> None:
    assert run(impl, b"EHLO x\r\nRCPT TO:<a@b>\r\n").events[-1] == NEED_MAIL


def test_data_before_rcpt_is_refused(impl: ModuleType) -> None:
    assert run(impl, b"EHLO x\r\nMAIL FROM:<a@b>\r\nDATA\r\n").events[-1] == NEED_RCPT


def test_nested_mail_is_refused(impl: ModuleType) -> None:
    assert run(impl, b"EHLO x\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<c@d>\r\n").events[-1] == NESTED


def test_refused_mail_does_not_open_a_transaction(impl: ModuleType) -> None:
    session = run(
        impl, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", replier=reply_with({Mail: 550})
    )
    assert session.events[-1] == NEED_MAIL


def test_refused_rcpt_does_not_count(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"DATA\r\n", replier=reply_with({Rcpt: 550}))
    assert session.events[-1] == NEED_RCPT
    assert session.engine.recipient_count == 0


def test_rset_ends_the_transaction(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"RSET\r\nRCPT TO:<c@d>\r\n")
    assert session.events[-1] == NEED_MAIL


def test_ehlo_ends_the_transaction(impl: ModuleType) -> None:
    session = run(impl, ENVELOPE + b"EHLO again\r\nMAIL FROM:<a@b>\r\n")
    assert session.events[-1] == Mail("a@b")


def test_mail_without_helo_is_accepted_by_default(impl: ModuleType) -> None:
    assert run(impl, b"MAIL FROM:<a@b>\r\n").events == [Mail("a@b")]


def test_helo_required_refuses_mail_before_helo(impl: ModuleType) -> None:
    limits = ServerLimits(helo_required=True)
    assert run(impl, b"MAIL FROM:<a@b>\r\n", limits).events == [SEND_HELO]
    assert run(impl, b"HELO x\r\nMAIL FROM:<a@b>\r\n", limits).events[-1] == Mail("a@b")


def test_helo_required_counts_only_an_accepted_helo(impl: ModuleType) -> None:
    limits = ServerLimits(helo_required=True)
    session = run(impl, b"HELO x\r\nMAIL FROM:<a@b>\r\n", limits, replier=reply_with({Hello: 501}))
    assert session.events[-1] == SEND_HELO


def test_recipient_limit_answers_452_after_the_limit(impl: ModuleType) -> None:
    limits = ServerLimits(recipient_limit=3)
    rcpts = b"".join(b"RCPT TO:<r%d@x>\r\n" % i for i in range(4))
    session = run(impl, b"EHLO x\r\nMAIL FROM:<a@b>\r\n" + rcpts, limits)
    assert session.events[-2] == Rcpt("r2@x")
    assert session.events[-1] == ProtocolError(452, "4.5.3", "Error: too many recipients")
    assert session.engine.recipient_count == 3


def test_recipient_limit_zero_means_no_limit(impl: ModuleType) -> None:
    limits = ServerLimits(recipient_limit=0)
    rcpts = b"".join(b"RCPT TO:<r%d@x>\r\n" % i for i in range(1500))
    session = run(impl, b"EHLO x\r\nMAIL FROM:<a@b>\r\n" + rcpts, limits)
    assert session.engine.recipient_count == 1500


# -- QUIT, 421, greeting -------------------------------------------------------------------


def test_quit_221_closes_the_session(impl: ModuleType) -> None:
    session = run(impl, b"QUIT\r\nNOOP\r\n")
    assert session.events == [Quit()]
    assert session.engine.closed
    assert session.last_reply == "221 2.0.0 Bye"


def test_421_reply_closes_the_session(impl: ModuleType) -> None:
    session = run(impl, b"NOOP\r\nNOOP\r\n", replier=reply_with({Noop: 421}))
    assert session.events == [Noop()]
    assert session.engine.closed


def test_421_greeting_closes_the_session(impl: ModuleType) -> None:
    engine = impl.ServerEngine()
    engine.reply(421, "busy", "4.3.2")
    assert engine.closed
    assert engine.data_to_send() == b"421 4.3.2 busy\r\n"


def test_refused_greeting_answers_503_to_everything_but_quit(impl: ModuleType) -> None:
    session = Session(impl, greeting=554)
    events = session.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nNOOP\r\nHELP\r\nQUIT\r\n")
    assert events == [NO_SERVICE] * 4 + [Quit()]
    assert session.replies[0] == "554 mx.example ESMTP"


def test_no_event_before_the_greeting_is_sent(impl: ModuleType) -> None:
    engine = impl.ServerEngine()
    engine.receive_data(b"NOOP\r\n")
    assert engine.awaiting_reply
    assert engine.next_event() is None
    engine.reply(220, "ready")
    assert engine.next_event() == Noop()


def test_end_of_input_gives_connection_closed(impl: ModuleType) -> None:
    session = run(impl, b"NOOP\r\nNOO")
    assert session.close() == [ConnectionClosed()]
    assert session.engine.closed


def test_input_after_close_is_ignored(impl: ModuleType) -> None:
    session = run(impl, b"QUIT\r\n")
    session.engine.receive_data(b"NOOP\r\n" * 100000)
    assert session.engine.buffered == 0
    assert session.engine.next_event() is None


# -- PIPELINING ----------------------------------------------------------------------------

GROUP_ENDERS = [
    b"EHLO x",
    b"HELO x",
    b"DATA",
    b"NOOP",
    b"QUIT",
    b"VRFY a",
    b"EXPN a",
    b"HELP",
    b"STARTTLS",
    b"AUTH PLAIN",
    b"ETRN x",
]
GROUP_MEMBERS = [b"MAIL FROM:<a@b>", b"RCPT TO:<a@b>", b"RSET"]


def test_commands_that_end_a_pipelining_group_flag_input_after_them(impl: ModuleType) -> None:
    for command in GROUP_ENDERS:
        session = Session(impl, replier=reply_with({StartTls: 454, Data: 554}))
        session.feed(b"EHLO x\r\n")
        assert session.engine.improper_pipelining is None
        session.feed(command + b"\r\nRSET\r\n")
        assert session.engine.improper_pipelining == command.split()[0].decode(), command


def test_commands_inside_a_pipelining_group_may_be_followed(impl: ModuleType) -> None:
    for command in GROUP_MEMBERS:
        session = Session(impl)
        session.feed(b"EHLO x\r\n")
        session.feed(command + b"\r\nRSET\r\n")
        assert session.engine.improper_pipelining is None, command


def test_pipelined_group_replies_are_one_write(impl: ModuleType) -> None:
    session = Session(impl)
    session.engine.receive_data(ENVELOPE + b"DATA\r\n")
    while (event := session.engine.next_event()) is not None:
        session.engine.reply(354 if event == Data() else 250, "ok")
    assert session.engine.data_to_send() == b"250 ok\r\n" * 3 + b"354 ok\r\n"
    assert session.engine.data_to_send() == b""


# -- STARTTLS ------------------------------------------------------------------------------


def test_starttls_220_discards_pipelined_plaintext(impl: ModuleType) -> None:
    """CVE-2011-0411: commands sent in clear after STARTTLS must not run under TLS."""
    injected = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n"
    session = run(impl, b"EHLO x\r\n")
    session.feed(b"STARTTLS\r\n" + injected)
    assert session.events == [Hello("EHLO", "x"), StartTls()]
    assert session.engine.discarded_after_starttls == len(injected)
    assert session.engine.tls_active
    assert session.engine.improper_pipelining == "STARTTLS"


def test_starttls_requires_ehlo_again(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nSTARTTLS\r\n")
    assert session.engine.greeted is None
    assert session.feed(b"AUTH PLAIN\r\n") == [SEND_EHLO]


def test_starttls_before_ehlo_is_refused(impl: ModuleType) -> None:
    assert run(impl, b"STARTTLS\r\n").events == [SEND_EHLO]
    assert run(impl, b"HELO x\r\nSTARTTLS\r\n").events[-1] == SEND_EHLO


def test_starttls_twice_is_refused(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nSTARTTLS\r\n")
    session.feed(b"EHLO x\r\nSTARTTLS\r\n")
    assert session.events[-1] == ProtocolError(554, "5.5.1", "Error: TLS already active")


def test_starttls_in_a_transaction_is_refused(impl: ModuleType) -> None:
    assert run(impl, ENVELOPE + b"STARTTLS\r\n").events[-1] == IN_TRANSACTION


def test_starttls_refused_by_policy_keeps_the_input(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nSTARTTLS\r\nNOOP\r\n", replier=reply_with({StartTls: 454}))
    assert session.events[-1] == Noop()
    assert not session.engine.tls_active


# -- AUTH ----------------------------------------------------------------------------------


def test_auth_334_reads_a_response_line(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nAUTH LOGIN\r\ndXNlcg==\r\nNOOP\r\n")
    assert session.events[1:] == [Auth("LOGIN"), AuthResponse("dXNlcg=="), Noop()]
    assert session.engine.authenticated


def test_auth_334_repeated_reads_several_response_lines(impl: ModuleType) -> None:
    replies = iter([334, 334, 235])

    def replier(event: Event) -> tuple[int, str, str | None]:
        if isinstance(event, Auth | AuthResponse):
            return next(replies), "", None
        return 250, "ok", None

    session = run(impl, b"EHLO x\r\nAUTH LOGIN\r\nMAIL\r\nRCPT\r\nNOOP\r\n", replier=replier)
    assert session.events[1:] == [Auth("LOGIN"), AuthResponse("MAIL"), AuthResponse("RCPT"), Noop()]


def test_auth_cancel_star_is_a_response(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nAUTH PLAIN\r\n*\r\n", replier=reply_with({AuthResponse: 501}))
    assert session.events[-1] == AuthResponse("*")
    assert not session.engine.authenticated


def test_auth_response_with_control_or_8bit_is_refused(impl: ModuleType) -> None:
    for line in (b"abc\x00", b"\xc3\xa9", b"a\rb"):
        session = run(impl, b"EHLO x\r\nAUTH PLAIN\r\n" + line + b"\r\n")
        assert session.events[-1] == ProtocolError(
            501, "5.5.2", "Error: malformed authentication response"
        ), line


def test_auth_line_over_the_auth_limit_is_refused_with_556(impl: ModuleType) -> None:
    limits = ServerLimits(auth_line_limit=1000)
    session = run(impl, b"EHLO x\r\nAUTH PLAIN\r\n" + b"A" * 999 + b"\r\nNOOP\r\n", limits)
    assert session.events[-2:] == [
        ProtocolError(500, "5.5.6", "Error: authentication exchange line is too long"),
        Noop(),
    ]


def test_auth_line_at_the_auth_limit_is_accepted(impl: ModuleType) -> None:
    limits = ServerLimits(auth_line_limit=1000)
    session = run(impl, b"EHLO x\r\nAUTH PLAIN\r\n" + b"A" * 998 + b"\r\n", limits)
    assert session.events[-1] == AuthResponse("A" * 998)


def test_auth_response_longer_than_a_command_line_is_accepted(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nAUTH PLAIN\r\n" + b"A" * 4000 + b"\r\n")
    assert session.events[-1] == AuthResponse("A" * 4000)


def test_auth_only_after_ehlo(impl: ModuleType) -> None:
    assert run(impl, b"AUTH PLAIN\r\n").events == [SEND_EHLO]
    assert run(impl, b"HELO x\r\nAUTH PLAIN\r\n").events[-1] == SEND_EHLO


def test_auth_not_twice_after_235(impl: ModuleType) -> None:
    session = run(
        impl, b"EHLO x\r\nAUTH PLAIN dGVzdA==\r\nAUTH PLAIN\r\n", replier=reply_with({Auth: 235})
    )
    assert session.events[-1] == ProtocolError(503, "5.5.1", "Error: already authenticated")


def test_auth_again_after_a_failed_auth(impl: ModuleType) -> None:
    session = run(
        impl, b"EHLO x\r\nAUTH PLAIN x\r\nAUTH PLAIN\r\n", replier=reply_with({Auth: 535})
    )
    assert session.events[-1] == Auth("PLAIN")


def test_auth_in_a_transaction_is_refused(impl: ModuleType) -> None:
    assert run(impl, ENVELOPE + b"AUTH PLAIN\r\n").events[-1] == IN_TRANSACTION


# -- ETRN ----------------------------------------------------------------------------------


def test_etrn_before_helo_is_refused(impl: ModuleType) -> None:
    assert run(impl, b"ETRN example.org\r\n").events == [SEND_HELO]


def test_etrn_in_a_transaction_is_refused(impl: ModuleType) -> None:
    assert run(impl, ENVELOPE + b"ETRN example.org\r\n").events[-1] == IN_TRANSACTION


def test_etrn_after_helo(impl: ModuleType) -> None:
    assert run(impl, b"HELO x\r\nETRN @example.org\r\n").events[-1] == Etrn("@example.org")


@pytest.mark.parametrize("verb", [b"VRFY", b"EXPN", b"HELP", b"NOOP"])
def test_informational_commands_work_before_helo(impl: ModuleType, verb: bytes) -> None:
    event = run(impl, verb + b" x\r\n").events[0]
    assert not isinstance(event, ProtocolError)
