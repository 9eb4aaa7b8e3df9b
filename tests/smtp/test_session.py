"""The client session against scripted servers: every bullet of "The SMTP client" and "The
LMTP client" that one session shows (EHLO/HELO, PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN,
CHUNKING, per-recipient results, time limits, bounds, what goes on the wire)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.smtpserver import Script, ScriptedServer

from mta.smtp.session import (
    NO_TLS,
    Endpoint,
    EnvelopeRecipient,
    RecipientResult,
    SessionError,
    open_session,
)
from mta.smtp.settings import ClientSettings, Protocol

from .helpers import CONTENT, LOG, SHORT, client, deliver_once, envelope, run, session_to


def deliver(
    server: ScriptedServer,
    *recipients: str,
    content: bytes = CONTENT,
    settings: ClientSettings | None = None,
    **changes: Any,
) -> list[RecipientResult]:
    mail = envelope(*recipients, content=content, **changes)
    return run(deliver_once(server.port, mail, content, settings))


# -- EHLO ------------------------------------------------------------------------------------


def test_ehlo_extensions_are_read() -> None:
    with ScriptedServer(Script(dsn=True, size=5000)) as server:
        session = run(_extensions(server.port))
    assert session["SIZE"] == "5000"
    assert {"PIPELINING", "DSN", "8BITMIME", "SMTPUTF8"} <= set(session)
    assert server.commands()[0][0] == "EHLO client.test"


async def _extensions(port: int) -> dict[str, str]:
    session = await session_to(port)
    session.quit()
    return session.extensions


def test_helo_when_ehlo_is_refused() -> None:
    with ScriptedServer(Script(ehlo_reply="502 5.5.2 EHLO not here")) as server:
        results = deliver(server)
    assert [r.code for r in results] == [250]
    commands = server.commands()[0]
    assert commands[:2] == ["EHLO client.test", "HELO client.test"]
    # no extensions after HELO: plain MAIL, RCPT and DATA, one at a time
    assert commands[2:5] == ["MAIL FROM:<a@sender.test>", "RCPT TO:<b@rcpt.test>", "DATA"]


def test_a_refused_helo_is_a_permanent_session_failure() -> None:
    script = Script(ehlo_reply="502 5.5.2 no", replies={"HELO": "550 5.7.1 go away"})
    with ScriptedServer(script) as server, pytest.raises(SessionError) as failure:
        run(session_to(server.port))
    assert failure.value.permanent and not failure.value.try_next
    assert "said: 550 5.7.1 go away (in reply to HELO command)" in failure.value.text


def test_ehlo_keywords_are_bounded_by_the_reply_line_limit() -> None:
    script = Script(dsn=True, chunking=True)
    with ScriptedServer(script) as server, pytest.raises(SessionError) as failure:
        run(session_to(server.port, client(reply_max_lines=3)))
    assert failure.value.text.startswith(
        "malformed reply from mx[127.0.0.1] while performing the EHLO handshake"
    )


async def _extensions_with(port: int, **changes: Any) -> dict[str, str]:
    session = await session_to(port, client(**changes))
    session.quit()
    return session.extensions


def test_discarded_ehlo_keywords_are_not_used() -> None:
    with ScriptedServer(Script(dsn=True)) as server:
        extensions = run(
            _extensions_with(server.port, discard_ehlo_keywords=frozenset({"PIPELINING", "DSN"}))
        )
    assert "PIPELINING" not in extensions and "DSN" not in extensions


# -- PIPELINING ------------------------------------------------------------------------------


def test_pipelining_sends_mail_rcpts_and_data_in_one_group() -> None:
    with ScriptedServer(Script()) as server:
        deliver(server, "b@rcpt.test", "c@rcpt.test")
    behind_mail = server.sessions[0].after_mail[0]
    assert behind_mail == b"RCPT TO:<b@rcpt.test>\r\nRCPT TO:<c@rcpt.test>\r\nDATA\r\n"


def test_without_pipelining_commands_wait_for_replies() -> None:
    with ScriptedServer(Script(pipelining=False)) as server:
        results = deliver(server, "b@rcpt.test", "c@rcpt.test")
    assert server.sessions[0].after_mail[0] == b""
    assert [r.code for r in results] == [250, 250]


# -- SIZE ------------------------------------------------------------------------------------


def test_size_is_declared_when_offered() -> None:
    with ScriptedServer(Script(size=100000)) as server:
        deliver(server)
    assert server.messages[0].mail_line == f"MAIL FROM:<a@sender.test> SIZE={len(CONTENT)}"


def test_message_over_the_servers_size_bounces_before_mail() -> None:
    with ScriptedServer(Script(size=10)) as server:
        results = deliver(server)
    (result,) = results
    assert result.code == 500 and result.dsn == "5.3.4"
    assert "exceeds size limit 10 of server mx[127.0.0.1]" in result.text
    assert not any(c.startswith("MAIL") for c in server.commands()[0])


# -- 8BITMIME --------------------------------------------------------------------------------

EIGHT_BIT = "Subject: caf\u00e9\r\n\r\nna\u00efve body\r\n".encode()


def test_8bitmime_is_declared_when_received_so_and_offered() -> None:
    with ScriptedServer(Script()) as server:
        deliver(server, content=EIGHT_BIT, eight_bit_mime=True)
    assert server.messages[0].mail_line == "MAIL FROM:<a@sender.test> BODY=8BITMIME"
    assert server.messages[0].content == EIGHT_BIT


def test_8bit_content_goes_unchanged_to_a_server_without_8bitmime() -> None:
    with ScriptedServer(Script(eight_bit_mime=False)) as server:
        results = deliver(server, content=EIGHT_BIT, eight_bit_mime=True)
    assert [r.code for r in results] == [250]
    assert server.messages[0].mail_line == "MAIL FROM:<a@sender.test>"
    assert server.messages[0].content == EIGHT_BIT  # no downgrade, no surprise


# -- SMTPUTF8 --------------------------------------------------------------------------------


def test_smtputf8_is_passed_when_needed_and_offered() -> None:
    with ScriptedServer(Script()) as server:
        results = deliver(server, "j\u00f6rg@rcpt.test", smtputf8=True)
    assert [r.code for r in results] == [250]
    assert server.messages[0].mail_line == "MAIL FROM:<a@sender.test> SMTPUTF8"
    assert server.messages[0].rcpt_tos == ["j\u00f6rg@rcpt.test"]


def test_smtputf8_needed_but_not_offered_bounces_5_6_7() -> None:
    with ScriptedServer(Script(smtputf8=False)) as server:
        results = deliver(server, "j\u00f6rg@rcpt.test", smtputf8=True)
    (result,) = results
    assert result.dsn == "5.6.7"
    assert "SMTPUTF8 is required, but was not offered by host mx[127.0.0.1]" in result.text
    assert not any(c.startswith("MAIL") for c in server.commands()[0])


def test_smtputf8_request_with_only_ascii_goes_to_a_server_without_it() -> None:
    with ScriptedServer(Script(smtputf8=False)) as server:
        results = deliver(server, smtputf8=True)
    assert [r.code for r in results] == [250]
    assert server.messages[0].mail_line == "MAIL FROM:<a@sender.test>"


# -- DSN -------------------------------------------------------------------------------------


def _dsn_envelope_recipients() -> tuple[EnvelopeRecipient, ...]:
    return (
        EnvelopeRecipient("b@rcpt.test", ("SUCCESS", "FAILURE"), "rfc822;B+x=y@rcpt.test"),
        EnvelopeRecipient("c@rcpt.test", ("NEVER",)),
    )


def test_dsn_parameters_are_passed_on_when_offered() -> None:
    mail = envelope(ret="HDRS", envid="id+1 2", recipients=_dsn_envelope_recipients())
    with ScriptedServer(Script(dsn=True)) as server:
        run(deliver_once(server.port, mail))
    message = server.messages[0]
    assert message.mail_line == "MAIL FROM:<a@sender.test> RET=HDRS ENVID=id+2B1+202"
    assert message.rcpt_lines == [
        "RCPT TO:<b@rcpt.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Bx+3Dy@rcpt.test",
        "RCPT TO:<c@rcpt.test> NOTIFY=NEVER",
    ]


def test_dsn_parameters_are_left_out_when_not_offered() -> None:
    mail = envelope(ret="FULL", envid="x", recipients=_dsn_envelope_recipients())
    with ScriptedServer(Script(dsn=False)) as server:
        run(deliver_once(server.port, mail))
    message = server.messages[0]
    assert message.mail_line == "MAIL FROM:<a@sender.test>"
    assert message.rcpt_lines == ["RCPT TO:<b@rcpt.test>", "RCPT TO:<c@rcpt.test>"]


# -- CHUNKING --------------------------------------------------------------------------------

AWKWARD = (
    b"Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\nbare\nLF and bare\rCR\r\n.\r\nend"
)


def test_chunking_sends_one_bdat_last_with_the_envelope() -> None:
    with ScriptedServer(Script(chunking=True)) as server:
        results = deliver(server, content=AWKWARD)
    assert [r.code for r in results] == [250]
    commands = server.commands()[0]
    assert any(c.startswith("BDAT ") and c.endswith(" LAST") for c in commands)
    assert "DATA" not in commands
    assert server.sessions[0].after_mail[0].startswith(b"RCPT TO:<b@rcpt.test>\r\nBDAT ")
    # BDAT content is not dot-stuffed, and its line ends are CRLF all the same
    expected = (
        b"Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\nbare\r\nLF and bare\r\nCR\r\n"
        b".\r\nend\r\n"
    )
    assert server.messages[0].content == expected


def test_chunking_can_be_turned_off() -> None:
    settings = client(discard_ehlo_keywords=frozenset({"CHUNKING"}))
    with ScriptedServer(Script(chunking=True)) as server:
        deliver(server, content=AWKWARD, settings=settings)
    assert "DATA" in server.commands()[0]


def test_chunking_without_pipelining_waits_for_the_recipients() -> None:
    with ScriptedServer(Script(chunking=True, pipelining=False)) as server:
        results = deliver(server, "b@rcpt.test", "c@rcpt.test")
    assert [r.code for r in results] == [250, 250]
    assert server.sessions[0].after_mail[0] == b""


# -- what goes on the wire -------------------------------------------------------------------


def test_data_is_dot_stuffed_with_crlf_line_ends_and_folded_lines() -> None:
    long_line = b"x" * 2500
    content = AWKWARD + b"\r\n" + long_line + b"\r\n"
    with ScriptedServer(Script()) as server:
        deliver(server, content=content)
    received = server.messages[0].content
    assert received.startswith(
        b"Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\nbare\r\nLF and bare\r\nCR\r\n"
    )
    assert b"\n" not in received.replace(b"\r\n", b"") and b"\r" not in received.replace(
        b"\r\n", b""
    )
    assert all(len(line) <= 998 for line in received.split(b"\r\n"))
    assert received.replace(b"\r\n ", b"").endswith(long_line + b"\r\n")


def test_command_injection_through_an_address_is_refused() -> None:
    with ScriptedServer(Script()) as server:
        results = deliver(server, "b@rcpt.test\r\nRSET", "c@rcpt.test")
    assert [r.dsn for r in results] == ["5.1.3", "2.0.0"]
    assert all("RSET" not in line for line in server.commands()[0])
    assert server.messages[0].rcpt_tos == ["c@rcpt.test"]


def test_a_sender_with_a_control_character_is_refused() -> None:
    with ScriptedServer(Script()) as server:
        results = deliver(server, sender="a@sender.test\nRCPT TO:<x@evil.test>")
    assert [r.dsn for r in results] == ["5.1.7"]
    assert not any(c.startswith("MAIL") for c in server.commands()[0])


# -- per-recipient results -------------------------------------------------------------------


def test_each_recipient_keeps_its_own_result() -> None:
    script = Script(
        rcpt_replies={"t@rcpt.test": "450 4.2.1 mailbox busy", "p@rcpt.test": "550 5.1.1 no such"}
    )
    with ScriptedServer(script) as server:
        results = deliver(server, "ok@rcpt.test", "t@rcpt.test", "p@rcpt.test")
    assert [(r.code, r.dsn) for r in results] == [
        (250, "2.0.0"),
        (450, "4.2.1"),
        (550, "5.1.1"),
    ]
    assert results[0].text == "250 2.0.0 Ok: queued as TEST"
    assert results[2].text == (
        "host mx[127.0.0.1] said: 550 5.1.1 no such (in reply to RCPT TO command)"
    )
    assert server.messages[0].rcpt_tos == ["ok@rcpt.test"]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_no_content_when_every_recipient_is_refused(pipelining: bool) -> None:
    script = Script(pipelining=pipelining, rcpt_replies={"b@rcpt.test": "550 5.1.1 no"})
    with ScriptedServer(script) as server:
        results = deliver(server)
    assert [r.code for r in results] == [550]
    assert server.messages == []
    if not pipelining:
        assert "DATA" not in server.commands()[0]


def test_a_refused_sender_fails_every_recipient() -> None:
    with ScriptedServer(Script(replies={"MAIL": "553 5.7.1 sender refused"})) as server:
        results = deliver(server, "b@rcpt.test", "c@rcpt.test")
    assert [r.dsn for r in results] == ["5.7.1", "5.7.1"]
    assert "(in reply to MAIL FROM command)" in results[0].text


def test_a_reply_without_enhanced_code_gets_one_derived() -> None:
    with ScriptedServer(Script(replies={"end": "452 try later"})) as server:
        results = deliver(server)
    assert [(r.code, r.dsn) for r in results] == [(452, "4.0.0")]
    assert "(in reply to end of DATA command)" in results[0].text


# -- time limits -----------------------------------------------------------------------------


def test_a_silent_greeting_times_out() -> None:
    with ScriptedServer(Script(stall=frozenset({"GREETING"}))) as server:
        settings = client(timeouts=replace(SHORT, helo=0.5))
        with pytest.raises(SessionError) as failure:
            run(session_to(server.port, settings))
    assert failure.value.text == (
        "conversation with mx[127.0.0.1] timed out while receiving the initial server greeting"
    )
    assert failure.value.try_next


def test_a_silent_mail_reply_times_out() -> None:
    settings = client(timeouts=replace(SHORT, mail=0.5))
    with (
        ScriptedServer(Script(stall=frozenset({"MAIL"}))) as server,
        pytest.raises(SessionError) as failure,
    ):
        deliver(server, settings=settings)
    assert failure.value.dsn == "4.4.2"
    assert "timed out while sending MAIL FROM" in failure.value.text


def test_a_silent_end_of_data_is_not_retried_elsewhere() -> None:
    settings = client(timeouts=replace(SHORT, data_done=0.5))
    with (
        ScriptedServer(Script(stall=frozenset({"end"}))) as server,
        pytest.raises(SessionError) as failure,
    ):
        deliver(server, settings=settings)
    assert "message may be sent more than once" in failure.value.text
    assert not failure.value.try_next


# -- bounded replies (a raw server) ----------------------------------------------------------


async def _with_raw_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    body: Callable[[int], Awaitable[object]],
) -> object:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await body(port)
    finally:
        server.close()


def test_an_overlong_reply_line_ends_the_session() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 " + b"x" * 5000 + b"\r\n")
        await reader.read(100)

    with pytest.raises(SessionError) as failure:
        run(_with_raw_server(answer, session_to))
    assert "malformed reply" in failure.value.text and "longer than 2048" in failure.value.text


def test_a_reply_of_too_many_lines_ends_the_session() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()
        writer.write(b"".join(b"250-KEYWORD%d\r\n" % n for n in range(500)) + b"250 END\r\n")
        await reader.read(100)

    with pytest.raises(SessionError) as failure:
        run(_with_raw_server(answer, session_to))
    assert "longer than 100 lines" in failure.value.text


def test_a_4xx_greeting_tries_the_next_host_and_a_5xx_one_too() -> None:
    for greeting in ("421 4.3.2 busy", "554 5.7.1 not you"):
        with (
            ScriptedServer(Script(greeting=greeting)) as server,
            pytest.raises(SessionError) as failure,
        ):
            run(session_to(server.port))
        assert failure.value.try_next and not failure.value.permanent
        assert f"refused to talk to me: {greeting}" in failure.value.text


def test_connection_refused_names_the_endpoint() -> None:
    with ScriptedServer(Script()) as server:
        port = server.port
    with pytest.raises(SessionError) as failure:
        run(session_to(port))
    assert failure.value.text == f"connect to mx[127.0.0.1]:{port}: Connection refused"
    assert not failure.value.connected


# -- LMTP ------------------------------------------------------------------------------------


def test_lmtp_has_one_reply_per_accepted_recipient() -> None:
    script = Script(
        lmtp=True,
        rcpt_replies={"gone@rcpt.test": "550 5.1.1 unknown"},
        final_replies={"full@rcpt.test": "452 4.2.2 mailbox full"},
    )
    with ScriptedServer(script) as server:
        settings = client(Protocol.LMTP)
        results = deliver(
            server, "ok@rcpt.test", "gone@rcpt.test", "full@rcpt.test", settings=settings
        )
    assert [(r.code, r.dsn) for r in results] == [
        (250, "2.0.0"),
        (550, "5.1.1"),
        (452, "4.2.2"),
    ]
    assert results[0].text == "250 2.0.0 <ok@rcpt.test> Saved"
    assert server.commands()[0][0] == "LHLO client.test"


def test_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "lmtp.sock"
    with ScriptedServer(Script(lmtp=True), unix_path=path) as server:
        results = run(_unix_delivery(path))
    assert [r.code for r in results] == [250, 250]
    assert server.messages[0].rcpt_tos == ["b@rcpt.test", "c@rcpt.test"]


async def _unix_delivery(path: Path) -> list[RecipientResult]:
    endpoint = Endpoint("localhost", str(path), 0, unix=True)
    session = await open_session(endpoint, client(Protocol.LMTP), NO_TLS, LOG)
    try:
        return await session.deliver(envelope("b@rcpt.test", "c@rcpt.test"), CONTENT)
    finally:
        session.quit()
