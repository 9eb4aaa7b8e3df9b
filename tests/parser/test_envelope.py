"""MAIL and RCPT: paths (RFC 5321), parameters (RFC 1870, 3461, 4954, 6152, 6531), injections."""

from __future__ import annotations

from types import ModuleType

from hotpath.events import Event, Mail, ProtocolError, Rcpt, ServerLimits

from .driver import run

BAD_SENDER = ProtocolError(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = ProtocolError(501, "5.1.3", "Bad recipient address syntax")
NO_SMTPUTF8 = ProtocolError(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address")
UTF8_ERROR = ProtocolError(500, "5.5.2", "Error: bad UTF-8 syntax")
SYNTAX = ProtocolError(500, "5.5.2", "Error: bad syntax")
MAIL_USAGE = ProtocolError(501, "5.5.4", "Syntax: MAIL FROM:<address>")
RCPT_USAGE = ProtocolError(501, "5.5.4", "Syntax: RCPT TO:<address>")
STRICT = ServerLimits(strict_envelope=True)


def _param_error(text: str) -> ProtocolError:
    return ProtocolError(501, "5.5.4", text)


def mail(impl: ModuleType, line: bytes, limits: ServerLimits | None = None) -> Event:
    """The event for one MAIL command line after EHLO."""
    return run(impl, b"EHLO x\r\n" + line + b"\r\n", limits).events[-1]


def rcpt(
    impl: ModuleType,
    line: bytes,
    mail_line: bytes = b"MAIL FROM:<s@x>",
    limits: ServerLimits | None = None,
) -> Event:
    """The event for one RCPT command line inside a transaction opened by `mail_line`."""
    return run(impl, b"EHLO x\r\n" + mail_line + b"\r\n" + line + b"\r\n", limits).events[-1]


# -- paths ---------------------------------------------------------------------------------

PATHS: list[tuple[bytes, str | None]] = [
    (b"<user@example.com>", "user@example.com"),
    (b'<"a b"@x>', "a b@x"),
    (b'<"a\\"b"@x>', 'a"b@x'),
    (b'<"a\\\\b"@x>', "a\\b@x"),
    (b'<"a>b"@x>', "a>b@x"),
    (b'<"a@b"@x>', "a@b@x"),
    (b"<a.b+tag@x.example>", "a.b+tag@x.example"),
    (b"<a@[192.0.2.1]>", "a@[192.0.2.1]"),
    (b"<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
    (b"<a@[ipv6:::1]>", "a@[ipv6:::1]"),
    (b"<a@[192.0.2.256]>", None),
    (b"<a@[192.0.2]>", None),
    (b"<a@[IPv6:2001:db8::g]>", None),
    (b"<a@[IPv6:192.0.2.1]>", None),
    (b"<a@[2001:db8::1]>", None),
    (b"<a@[IPv6:fe80::1%eth0]>", None),
    (b"<a@[IPv6:::ffff:192.0.2.1]>", "a@[IPv6:::ffff:192.0.2.1]"),
    (b"<a@[192.0.2.01]>", None),
    (b"<a@[192.0.2.1>", None),
    (b"<@relay.example:a@x>", "a@x"),
    (b"<@r1.example,@r2.example:a@x>", "a@x"),
    (b"<@r1.example,r2.example:a@x>", None),
    (b"<@-bad.example:a@x>", None),
    (b"<@r1.example a@x>", None),
    (b"<postmaster>", "postmaster"),
    (b"<local-only>", "local-only"),
    (b"<a@b@c>", None),
    (b"<a b@c>", None),
    (b"<a@-x.example>", None),
    (b"<a@x-.example>", None),
    (b"<a@x..example>", None),
    (b"<a@x_y.example>", None),
    (b"<a@>", None),
    (b"<@x>", None),
    (b'<"a"b@x>', None),
]


def test_mail_path_table(impl: ModuleType) -> None:
    for path, expected in PATHS:
        event = mail(impl, b"MAIL FROM:" + path)
        assert event == (Mail(expected) if expected is not None else BAD_SENDER), path


def test_rcpt_path_table(impl: ModuleType) -> None:
    for path, expected in PATHS:
        event = rcpt(impl, b"RCPT TO:" + path)
        assert event == (Rcpt(expected) if expected is not None else BAD_RECIPIENT), path


def test_quoted_local_part_is_unquoted_in_internal_form(impl: ModuleType) -> None:
    assert mail(impl, b'MAIL FROM:<"a b"@x>') == Mail("a b@x")


def test_source_route_is_accepted_and_stripped(impl: ModuleType) -> None:
    assert rcpt(impl, b"RCPT TO:<@a.example,@b.example:u@c.example>") == Rcpt("u@c.example")


def test_null_sender_is_accepted_for_mail(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<>") == Mail("")


def test_null_path_is_refused_for_rcpt(impl: ModuleType) -> None:
    assert rcpt(impl, b"RCPT TO:<>") == BAD_RECIPIENT


def test_postmaster_without_domain_is_a_recipient(impl: ModuleType) -> None:
    assert rcpt(impl, b"RCPT TO:<Postmaster>") == Rcpt("Postmaster")


def test_lenient_envelope_accepts_space_after_colon_and_missing_brackets(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM: <a@b>") == Mail("a@b")
    assert mail(impl, b"MAIL FROM:a@b SIZE=10") == Mail("a@b", size=10)
    assert rcpt(impl, b"RCPT TO: c@d") == Rcpt("c@d")


def test_strict_envelope_refuses_space_after_colon_and_missing_brackets(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM: <a@b>", STRICT) == MAIL_USAGE
    assert mail(impl, b"MAIL FROM:a@b", STRICT) == MAIL_USAGE
    assert rcpt(impl, b"RCPT TO: <c@d>", limits=STRICT) == RCPT_USAGE
    assert mail(impl, b"MAIL FROM:<a@b>", STRICT) == Mail("a@b")


def test_mail_path_syntax_errors(impl: ModuleType) -> None:
    for line in (
        b'MAIL FROM:<"unterminated@x>',
        b"MAIL FROM:",
        b"MAIL FROM:<a@b",
        b"MAIL FROM:<a@b>SIZE=1",
        b"MAIL FROM",
    ):
        assert mail(impl, line) == MAIL_USAGE, line


# -- length limits (RFC 5321 4.5.3.1) ------------------------------------------------------


def _exact_domain(length: int) -> bytes:
    """A valid domain of exactly `length` octets (labels of at most 63)."""
    parts: list[bytes] = []
    remaining = length
    while remaining > 63:
        parts.append(b"d" * 62)
        remaining -= 63
    parts.append(b"d" * remaining)
    domain = b".".join(parts)
    assert len(domain) == length
    return domain


def test_local_part_of_64_is_accepted(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<" + b"l" * 64 + b"@x>") == Mail("l" * 64 + "@x")


def test_local_part_of_65_is_refused(impl: ModuleType) -> None:
    event = mail(impl, b"MAIL FROM:<" + b"l" * 65 + b"@x>")
    assert event == ProtocolError(501, "5.1.7", "Bad sender address syntax: local part too long")


def test_domain_of_255_is_accepted(impl: ModuleType) -> None:
    limits = ServerLimits(path_limit=1000)
    domain = _exact_domain(255)
    assert rcpt(impl, b"RCPT TO:<a@" + domain + b">", limits=limits) == Rcpt("a@" + domain.decode())


def test_domain_of_256_is_refused(impl: ModuleType) -> None:
    limits = ServerLimits(path_limit=1000)
    event = rcpt(impl, b"RCPT TO:<a@" + _exact_domain(256) + b">", limits=limits)
    assert event == ProtocolError(501, "5.1.3", "Bad recipient address syntax: domain too long")


def test_path_of_256_with_brackets_is_accepted(impl: ModuleType) -> None:
    address = b"l" * 64 + b"@" + _exact_domain(256 - 2 - 65)
    assert len(b"<" + address + b">") == 256
    assert rcpt(impl, b"RCPT TO:<" + address + b">") == Rcpt(address.decode())


def test_path_of_257_with_brackets_is_refused(impl: ModuleType) -> None:
    address = b"l" * 64 + b"@" + _exact_domain(256 - 1 - 65)
    event = rcpt(impl, b"RCPT TO:<" + address + b">")
    assert event == ProtocolError(501, "5.1.3", "Bad recipient address syntax: address too long")


def test_label_over_63_octets_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a@" + b"x" * 64 + b".example>") == BAD_SENDER
    assert mail(impl, b"MAIL FROM:<a@" + b"x" * 63 + b".example>") == Mail(
        "a@" + "x" * 63 + ".example"
    )


# -- parameters ----------------------------------------------------------------------------

MAIL_PARAMETERS: list[tuple[bytes, Event]] = [
    (b"SIZE=1000", Mail("a@b", size=1000)),
    (b"SIZE=0", Mail("a@b", size=0)),
    (b"SIZE=10240000", Mail("a@b", size=10240000)),
    (b"SIZE=10240001", ProtocolError(552, "5.3.4", "Message size exceeds fixed limit")),
    (b"SIZE=x", _param_error("Bad message size syntax")),
    (b"SIZE=-1", _param_error("Bad message size syntax")),
    (b"SIZE", _param_error("Bad message size syntax")),
    (b"SIZE=", _param_error("Bad SIZE parameter syntax")),
    (b"SIZE=1234567890123456789", _param_error("Bad message size syntax")),
    (b"BODY=8BITMIME", Mail("a@b", body="8BITMIME")),
    (b"body=7bit", Mail("a@b", body="7BIT")),
    (b"BODY=BINARYMIME", Mail("a@b", body="BINARYMIME")),
    (b"BODY=9BIT", _param_error("Bad BODY keyword syntax")),
    (b"BODY", _param_error("Bad BODY keyword syntax")),
    (b"SMTPUTF8", Mail("a@b", smtputf8=True)),
    (b"SMTPUTF8=yes", _param_error("Bad SMTPUTF8 parameter syntax")),
    (b"RET=FULL", Mail("a@b", ret="FULL")),
    (b"ret=hdrs", Mail("a@b", ret="HDRS")),
    (b"RET=ALL", _param_error("Bad RET parameter syntax")),
    (b"ENVID=QQ314159", Mail("a@b", envid="QQ314159")),
    (b"ENVID=a+2Bb+3Dc", Mail("a@b", envid="a+b=c")),
    (b"ENVID=a+2b", _param_error("Bad ENVID parameter syntax")),
    (b"ENVID=a+2", _param_error("Bad ENVID parameter syntax")),
    (b"ENVID=" + b"e" * 100, Mail("a@b", envid="e" * 100)),
    (b"ENVID=" + b"e" * 101, _param_error("Bad ENVID parameter syntax")),
    (b"AUTH=<>", Mail("a@b", auth="<>")),
    (b"AUTH=user+40example.com", Mail("a@b", auth="user@example.com")),
    (b"FOO=bar", ProtocolError(555, "5.5.4", "Unsupported option: FOO")),
    (b"XCLIENT", ProtocolError(555, "5.5.4", "Unsupported option: XCLIENT")),
    (b"=x", _param_error("Error: bad parameter syntax")),
    (b"-X=1", _param_error("Error: bad parameter syntax")),
    (b"SIZE==1", _param_error("Bad SIZE parameter syntax")),
    (b"SIZE=1 SIZE=2", _param_error("Error: duplicate SIZE parameter")),
    (b"SIZE=1 size=2", _param_error("Error: duplicate SIZE parameter")),
    (b"BODY=7BIT BODY=8BITMIME", _param_error("Error: duplicate BODY parameter")),
    (b"SIZE=5  BODY=7BIT", Mail("a@b", size=5, body="7BIT")),
    (
        b"SIZE=5 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id AUTH=<>",
        Mail("a@b", 5, "8BITMIME", True, "HDRS", "id", "<>"),
    ),
]


def test_mail_parameter_table(impl: ModuleType) -> None:
    for parameters, expected in MAIL_PARAMETERS:
        assert mail(impl, b"MAIL FROM:<a@b> " + parameters) == expected, parameters


RCPT_PARAMETERS: list[tuple[bytes, Event]] = [
    (b"NOTIFY=NEVER", Rcpt("c@d", notify=("NEVER",))),
    (b"NOTIFY=success,failure", Rcpt("c@d", notify=("FAILURE", "SUCCESS"))),
    (b"NOTIFY=DELAY,SUCCESS,FAILURE", Rcpt("c@d", notify=("DELAY", "FAILURE", "SUCCESS"))),
    (b"NOTIFY=NEVER,SUCCESS", _param_error("Error: Bad NOTIFY parameter syntax")),
    (b"NOTIFY=SUCCESS,SUCCESS", _param_error("Error: Bad NOTIFY parameter syntax")),
    (b"NOTIFY=SOMETIMES", _param_error("Error: Bad NOTIFY parameter syntax")),
    (b"NOTIFY", _param_error("Error: Bad NOTIFY parameter syntax")),
    (b"ORCPT=rfc822;c@d", Rcpt("c@d", orcpt="rfc822;c@d")),
    (b"ORCPT=rfc822;c+2Bx@d", Rcpt("c@d", orcpt="rfc822;c+x@d")),
    (b"ORCPT=rfc822;", _param_error("Error: Bad ORCPT parameter syntax")),
    (b"ORCPT=c@d", _param_error("Error: Bad ORCPT parameter syntax")),
    (b"ORCPT=;c@d", _param_error("Error: Bad ORCPT parameter syntax")),
    (b"ORCPT=rfc_822;c@d", _param_error("Error: Bad ORCPT parameter syntax")),
    (b"SIZE=10", ProtocolError(555, "5.5.4", "Unsupported option: SIZE")),
    (b"NOTIFY=NEVER NOTIFY=NEVER", _param_error("Error: duplicate NOTIFY parameter")),
]


def test_rcpt_parameter_table(impl: ModuleType) -> None:
    for parameters, expected in RCPT_PARAMETERS:
        assert rcpt(impl, b"RCPT TO:<c@d> " + parameters) == expected, parameters


def test_size_with_non_ascii_digits_is_refused(impl: ModuleType) -> None:
    for digits in ("\u0661", "\u00b2", "\uff11"):
        line = b"MAIL FROM:<a@b> SMTPUTF8 SIZE=" + digits.encode()
        assert mail(impl, line) == _param_error("Bad message size syntax"), digits


# -- 21Nails-style injection through xtext and raw control characters --------------------

XTEXT_CONTROLS = [b"+0D", b"+0A", b"+00", b"+09", b"+1B", b"+7F", b"+0D+0A"]


def test_xtext_space_decodes_for_a_quoted_local_part_in_orcpt(impl: ModuleType) -> None:
    event = rcpt(impl, b'RCPT TO:<c@d> ORCPT=rfc822;"a+20b"@d')
    assert isinstance(event, Rcpt)
    assert event.orcpt == 'rfc822;"a b"@d'


def test_envid_xtext_decoding_to_control_characters_is_refused(impl: ModuleType) -> None:
    for encoded in XTEXT_CONTROLS:
        event = mail(impl, b"MAIL FROM:<a@b> ENVID=x" + encoded + b"y")
        assert event == _param_error("Bad ENVID parameter syntax"), encoded


def test_orcpt_xtext_decoding_to_control_characters_is_refused(impl: ModuleType) -> None:
    for encoded in XTEXT_CONTROLS:
        event = rcpt(impl, b"RCPT TO:<c@d> ORCPT=rfc822;c" + encoded + b"@d")
        assert event == _param_error("Error: Bad ORCPT parameter syntax"), encoded


def test_auth_param_xtext_decoding_to_control_characters_is_refused(impl: ModuleType) -> None:
    for encoded in XTEXT_CONTROLS:
        event = mail(impl, b"MAIL FROM:<a@b> AUTH=u" + encoded + b"@x")
        assert event == _param_error("Bad AUTH parameter syntax"), encoded


def test_envid_forging_a_second_mail_command_never_produces_one(impl: ModuleType) -> None:
    forged = b"MAIL FROM:<a@b> ENVID=x+0D+0AMAIL+20FROM:+3Cevil+40x+3E\r\nNOOP\r\n"
    session = run(impl, b"EHLO x\r\n" + forged)
    assert session.events[1:] == [
        _param_error("Bad ENVID parameter syntax"),
        session.events[-1],
    ]
    assert not any(isinstance(e, Mail) for e in session.events)


def test_orcpt_forging_a_second_recipient_never_produces_one(impl: ModuleType) -> None:
    session = run(
        impl,
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d> ORCPT=rfc822;c@d+0D+0ARCPT+20TO:+3Ce@f+3E\r\n",
    )
    assert [e for e in session.events if isinstance(e, Rcpt)] == []


def test_raw_cr_inside_a_command_line_is_refused(impl: ModuleType) -> None:
    session = run(impl, b"EHLO x\r\nMAIL FROM:<a@b>\rRCPT TO:<evil@x>\r\n")
    assert session.events[-1] == SYNTAX


def test_raw_nul_inside_a_command_line_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a@b\x00evil@x>") == SYNTAX
    assert mail(impl, b"MAIL FROM:<a@b> ENVID=a\x00b") == SYNTAX


def test_raw_control_characters_in_a_path_are_refused(impl: ModuleType) -> None:
    for control in (b"\x01", b"\x1b", b"\x7f", b"\t"):
        assert mail(impl, b"MAIL FROM:<a" + control + b"b@x>") == SYNTAX, control


def test_raw_control_character_escaped_in_a_quoted_local_part_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b'MAIL FROM:<"a\\\x01b"@x>') == SYNTAX


def test_decode_xtext_table(impl: ModuleType) -> None:
    cases: list[tuple[str, int, str | None]] = [
        ("abc", 10, "abc"),
        ("a+2Bb", 10, "a+b"),
        ("+3D", 10, "="),
        ("+7E", 10, "~"),
        ("+2b", 10, None),
        ("+G0", 10, None),
        ("a=b", 10, None),
        ("a b", 10, None),
        ("abcd", 3, None),
        ("+0D", 10, None),
        ("+80", 10, None),
        ("\u00e9", 10, "\u00e9"),
    ]
    for value, limit, expected in cases:
        assert impl.decode_xtext(value, limit) == expected, value


# -- UTF-8 (RFC 6531) ----------------------------------------------------------------------


def test_non_ascii_address_without_smtputf8_is_refused_553(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<j\xc3\xb6rg@example.com>") == NO_SMTPUTF8


def test_non_ascii_parameter_without_smtputf8_is_refused_553(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a@b> ENVID=\xc3\xa9") == NO_SMTPUTF8


def test_non_ascii_local_part_with_smtputf8_is_accepted(impl: ModuleType) -> None:
    event = mail(impl, b"MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8")
    assert event == Mail("j\u00f6rg@example.com", smtputf8=True)


def test_u_label_domain_with_smtputf8_is_accepted(impl: ModuleType) -> None:
    event = mail(impl, "MAIL FROM:<a@b\u00fccher.example> SMTPUTF8".encode())
    assert event == Mail("a@b\u00fccher.example", smtputf8=True)


def test_non_ascii_quoted_local_part_with_smtputf8_is_accepted(impl: ModuleType) -> None:
    event = mail(impl, '"\u00e9 \u00e8"@x'.encode().join([b"MAIL FROM:<", b"> SMTPUTF8"]))
    assert event == Mail("\u00e9 \u00e8@x", smtputf8=True)


def test_non_ascii_rcpt_only_when_mail_had_smtputf8(impl: ModuleType) -> None:
    line = b"RCPT TO:<\xc3\xa9@x>"
    assert rcpt(impl, line) == NO_SMTPUTF8
    assert rcpt(impl, line, b"MAIL FROM:<a@b> SMTPUTF8") == Rcpt("\u00e9@x")


def test_non_ascii_orcpt_only_when_mail_had_smtputf8(impl: ModuleType) -> None:
    line = b"RCPT TO:<c@d> ORCPT=rfc822;\xc3\xa9@x"
    assert rcpt(impl, line) == NO_SMTPUTF8
    assert rcpt(impl, line, b"MAIL FROM:<a@b> SMTPUTF8") == Rcpt("c@d", orcpt="rfc822;\u00e9@x")


def test_utf8_overlong_slash_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\xc0\xaf@x> SMTPUTF8") == UTF8_ERROR


def test_utf8_three_byte_overlong_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\xe0\x80\xaf@x> SMTPUTF8") == UTF8_ERROR


def test_utf8_encoded_surrogate_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\xed\xa0\x80@x> SMTPUTF8") == UTF8_ERROR


def test_utf8_stray_continuation_byte_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\x80@x> SMTPUTF8") == UTF8_ERROR


def test_utf8_truncated_sequence_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\xe2\x82@x> SMTPUTF8") == UTF8_ERROR
    assert mail(impl, b"MAIL FROM:<a@x> SMTPUTF8 ENVID=\xc3") == UTF8_ERROR


def test_utf8_code_point_over_10ffff_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\xf4\x90\x80\x80@x> SMTPUTF8") == UTF8_ERROR


def test_utf8_invalid_lead_bytes_are_refused(impl: ModuleType) -> None:
    for lead in (b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\xc1\xbf"):
        assert mail(impl, b"MAIL FROM:<a" + lead + b"@x> SMTPUTF8") == UTF8_ERROR, lead


def test_utf8_c1_control_is_refused(impl: ModuleType) -> None:
    assert mail(impl, b"MAIL FROM:<a\xc2\x85@x> SMTPUTF8") == UTF8_ERROR
    assert mail(impl, b"MAIL FROM:<a\xc2\x9b@x> SMTPUTF8") == UTF8_ERROR


def test_bad_utf8_in_any_command_is_refused(impl: ModuleType) -> None:
    assert run(impl, b"HELO \xc0\xaf\r\n").events == [UTF8_ERROR]


def test_parse_path_is_exported(impl: ModuleType) -> None:
    assert impl.parse_path('"a b"@x', False) == ("a b@x", None)
    assert impl.parse_path("", False) == ("", None)
    assert impl.parse_path("a@b@c", False) is None


# -- Only ASCII letters fold: str.upper() maps U+0131 to "I" and U+017F to "S" ---------------


def test_dotless_i_does_not_spell_mail(impl: ModuleType) -> None:
    session = run(impl, "EHLO x\r\nMA\u0131L FROM:<a@b>\r\n".encode())
    assert session.events[-1] == ProtocolError(502, "5.5.2", "Error: command not recognized")


def test_non_ascii_letters_do_not_spell_from(impl: ModuleType) -> None:
    assert mail(impl, "MAIL FR\u0131M:<a@b> SMTPUTF8".encode()) == ProtocolError(
        501, "5.5.4", "Syntax: MAIL FROM:<address>"
    )


def test_long_s_does_not_spell_notify_success(impl: ModuleType) -> None:
    event = rcpt(impl, "RCPT TO:<c@d> NOTIFY=\u017fUCCESS".encode(), b"MAIL FROM:<s@x> SMTPUTF8")
    assert event == _param_error("Error: Bad NOTIFY parameter syntax")


def test_dotless_i_does_not_spell_an_auth_mechanism(impl: ModuleType) -> None:
    session = run(impl, "EHLO x\r\nAUTH PLA\u0131N\r\n".encode())
    assert session.events[-1] == ProtocolError(501, "5.5.4", "Syntax: AUTH mechanism")
