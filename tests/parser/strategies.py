"""Hypothesis strategies: SMTP sessions from a grammar of valid and invalid commands."""

from __future__ import annotations

from hypothesis import strategies as st

COMMANDS: tuple[bytes, ...] = (
    b"EHLO client.example",
    b"HELO client.example",
    b"ehlo x",
    b"EHLO",
    b"MAIL FROM:<sender@example.com>",
    b"MAIL FROM:<>",
    b"MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME",
    b"MAIL FROM:<a@b> BODY=BINARYMIME",
    b"MAIL FROM:<a@b> SMTPUTF8",
    b"MAIL FROM:<\xc3\xa9@b> SMTPUTF8",
    b"MAIL FROM:<\xc3\xa9@b>",
    b"MAIL FROM:<a@b> RET=HDRS ENVID=x+2By",
    b"MAIL FROM:<a@b> ENVID=a+0D+0AMAIL",
    b"MAIL FROM:<a@b> AUTH=<>",
    b"MAIL FROM:<a@b> SIZE=99999999999",
    b"MAIL FROM:<a@b> FOO=bar",
    b"MAIL FROM: <a@b>",
    b"MAIL FROM:a@b",
    b"MAIL FROM:<@r1,@r2:a@[127.0.0.1]>",
    b'MAIL FROM:<"a b"@c>',
    b"RCPT TO:<rcpt@example.net>",
    b"RCPT TO:<postmaster>",
    b"RCPT TO:<>",
    b"RCPT TO:<a@[IPv6:::1]> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b",
    b"RCPT TO:<\xc3\xa9@b>",
    b"RCPT TO:<a@b> NOTIFY=NEVER,DELAY",
    b"DATA",
    b"DATA x",
    b"RSET",
    b"NOOP",
    b"VRFY someone",
    b"EXPN list",
    b"HELP",
    b"HELP MAIL",
    b"ETRN example.org",
    b"ETRN",
    b"AUTH PLAIN",
    b"AUTH LOGIN dGVzdA==",
    b"AUTH",
    b"STARTTLS",
    b"XYZZY",
    b"",
    b"MAIL FROM:<a@b>\x00",
    b"MAIL FROM:<a@b>\r",
    b"\xc0\xaf",
    b"\xf4\x90\x80\x80",
    b"*",
    b"dGVzdA==",
)
LINE_ENDS: tuple[bytes, ...] = (b"\r\n",) * 8 + (b"\n", b"\r", b"\r\r\n", b"")

content_line = st.one_of(
    st.sampled_from(
        [b"", b".", b"..", b".x", b"..x", b"Subject: hi", b"\x00\xff\x80", b"a\rb", b"a" * 1100]
    ),
    st.binary(max_size=40),
)


@st.composite
def commands(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(COMMANDS)) + draw(st.sampled_from(LINE_ENDS))


@st.composite
def bdat_commands(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=60))
    declared = draw(st.sampled_from([len(payload), len(payload), max(0, len(payload) - 1)]))
    last = draw(st.sampled_from([b"", b" LAST", b" last", b" NOTLAST"]))
    verb = draw(st.sampled_from([b"BDAT ", b"BDAT ", b"BDAT x", b"BDAT -"]))
    return verb + str(declared).encode() + last + b"\r\n" + payload


@st.composite
def contents(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(content_line, max_size=8))
    ends = draw(st.lists(st.sampled_from(LINE_ENDS), min_size=len(lines), max_size=len(lines)))
    body = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    return body + draw(st.sampled_from([b"\r\n.\r\n", b".\r\n", b"\n.\n", b""]))


session_fragment = st.one_of(
    commands(), commands(), commands(), bdat_commands(), contents(), st.binary(max_size=30)
)


@st.composite
def sessions(draw: st.DrawFn) -> bytes:
    """A client's input: mostly plausible commands, content, chunks, and noise."""
    start = draw(st.sampled_from([b"", b"EHLO client.example\r\n"]))
    return start + b"".join(draw(st.lists(session_fragment, max_size=14)))


cuts = st.lists(st.integers(min_value=0, max_value=5000), max_size=12)
