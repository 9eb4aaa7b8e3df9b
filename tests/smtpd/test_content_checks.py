"""header_checks and body_checks end to end: what a client is told and what the queue holds."""

from __future__ import annotations

import logging
import smtplib
from pathlib import Path

import pytest

from mta.config.maincf import ConfigError, settings_from_text
from mta.queue import QueueName
from mta.smtpd.settings import SmtpdSettings

from .harness import RunningServer, StartServer, read_replies, read_reply

MESSAGE = b"From: a@example.org\r\nSubject: hello\r\nX-Spam: yes\r\n\r\nline one\r\nline two\r\n"
CONTEXT = (
    " from unknown[127.0.0.1]; from=<a@example.org> to=<root@localhost> proto=ESMTP"
    " helo=<client.example>"
)


def checks_server(start_server: StartServer, tmp: Path, **tables: str) -> RunningServer:
    """A server whose PARAMETER = regexp:FILE for each table given as PARAMETER=text."""
    main_cf = ""
    for name, text in tables.items():
        path = tmp / name
        path.write_text(text)
        main_cf += f"{name} = regexp:{path}\n"
    return start_server(main_cf)


def send(server: RunningServer, content: bytes = MESSAGE) -> tuple[int, bytes]:
    """(code, text) of the reply to the end of the message."""
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo("client.example")
        client.mail("a@example.org")
        client.rcpt("root@localhost")
        return client.data(content)


def smtpd_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "mta.smtpd"]


@pytest.fixture(autouse=True)
def _log_smtpd(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mta.smtpd")


def test_reject_refuses_at_end_of_data_and_queues_nothing(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = checks_server(
        start_server, tmp_path, header_checks="/^Subject: hello/ REJECT Go away\n"
    )
    assert send(server) == (550, b"5.7.1 Go away")
    assert server.messages() == []
    assert f"NOQUEUE: reject: header Subject: hello{CONTEXT}: 5.7.1 Go away" in smtpd_lines(caplog)
    # The session goes on: the next message, which does not match, is queued.
    code, _ = send(server, b"Subject: other\r\n\r\nbody\r\n")
    assert code == 250 and len(server.messages()) == 1


def test_body_checks_reject_a_bdat_message(start_server: StartServer, tmp_path: Path) -> None:
    server = checks_server(start_server, tmp_path, body_checks="/^line two/ REJECT\n")
    with server.connect() as sock:
        read_reply(sock)
        sock.sendall(b"EHLO client.example\r\n")
        read_reply(sock)
        sock.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\n")
        read_replies(sock, 2)
        sock.sendall(b"BDAT 30\r\n" + MESSAGE[:30])
        assert read_reply(sock).startswith(b"250 2.0.0 Ok: 30 bytes")
        rest = MESSAGE[30:]
        sock.sendall(b"BDAT %d LAST\r\n" % len(rest) + rest)
        assert read_reply(sock) == b"550 5.7.1 Message content rejected\r\n"
    assert server.messages() == []


def test_hold_queues_into_the_hold_queue(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = checks_server(start_server, tmp_path, header_checks="/^X-Spam: yes/ HOLD review\n")
    code, text = send(server)
    assert code == 250
    queue_id = text.split()[-1].decode()
    assert server.queue.locate(queue_id) is QueueName.HOLD
    assert f"{queue_id}: hold: header X-Spam: yes{CONTEXT}: review" in smtpd_lines(caplog)


def test_discard_says_250_and_queues_nothing(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = checks_server(start_server, tmp_path, body_checks="/^line one/ DISCARD\n")
    assert send(server) == (250, b"2.0.0 Ok")
    assert server.messages() == []
    assert f"NOQUEUE: discard: body line one{CONTEXT}" in smtpd_lines(caplog)


def test_prepend_replace_and_ignore_change_the_queued_content(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = checks_server(
        start_server,
        tmp_path,
        header_checks=(
            "/^Subject: (.*)/ REPLACE Subject: [ext] $1\n"
            "/^From:/ PREPEND X-Checked: yes\n"
            "/^X-Spam:/ IGNORE\n"
        ),
        body_checks="/^line two/ REPLACE line 2\n",
    )
    code, text = send(server)
    assert code == 250
    content = server.content(text.split()[-1].decode())
    assert content.endswith(
        b"X-Checked: yes\r\nFrom: a@example.org\r\nSubject: [ext] hello\r\n\r\n"
        b"line one\r\nline 2\r\n"
    )
    assert content.startswith(b"Received: ")


def test_redirect_and_filter_change_the_envelope(start_server: StartServer, tmp_path: Path) -> None:
    server = checks_server(
        start_server,
        tmp_path,
        header_checks=(
            "/^Subject:/ REDIRECT quarantine@example.net\n/^From:/ FILTER scan:[127.0.0.1]:10025\n"
        ),
    )
    assert send(server)[0] == 250
    [message] = server.messages()
    assert [state.recipient.address for state in message.recipients] == ["quarantine@example.net"]
    assert message.extras["filter"] == "scan:[127.0.0.1]:10025"


def test_a_table_that_cannot_open_defers_the_message_until_it_can(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = tmp_path / "later"
    server = start_server(f"header_checks = regexp:{table}\n")
    assert send(server) == (451, b"4.3.0 Temporary lookup failure")
    assert server.messages() == []
    lines = smtpd_lines(caplog)
    assert any(
        line.startswith(f"warning: unknown[127.0.0.1]: table regexp:{table}") for line in lines
    )
    assert (
        "NOQUEUE: reject: END-OF-MESSAGE from unknown[127.0.0.1]: 451 4.3.0 Temporary lookup"
        " failure; from=<a@example.org> to=<root@localhost> proto=ESMTP helo=<client.example>"
    ) in lines
    table.write_text("/^Subject: hello/ WARN seen\n")
    assert send(server)[0] == 250
    assert len(server.messages()) == 1


def test_without_checks_content_passes_uninspected() -> None:
    # The session makes an inspector only when content_checks is set: by default, none.
    defaults = SmtpdSettings.from_settings(settings_from_text("", "main.cf"))
    assert defaults.content_checks is None
    some = SmtpdSettings.from_settings(settings_from_text("body_checks = regexp:/x\n", "m"))
    assert some.content_checks is not None and some.content_checks.header == ()


def test_content_filter_is_recorded_and_a_filter_action_wins(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("content_filter = scan:[127.0.0.1]:10025\n")
    assert send(server)[0] == 250
    [message] = server.messages()
    assert message.extras["filter"] == "scan:[127.0.0.1]:10025"
    path = tmp_path / "header_checks"
    path.write_text("/^From:/ FILTER other:host\n")
    checked = start_server(f"content_filter = scan:\nheader_checks = regexp:{path}\n")
    assert send(checked)[0] == 250
    [message] = checked.messages()
    assert message.extras["filter"] == "other:host"


def test_content_filter_must_be_transport_colon_nexthop() -> None:
    assert SmtpdSettings.from_settings(settings_from_text("", "m")).content_filter == ""
    empty_nexthop = settings_from_text("content_filter = scan:\n", "m")
    assert SmtpdSettings.from_settings(empty_nexthop).content_filter == "scan:"
    for value in ("scan", ":host", "a b:host"):
        with pytest.raises(ConfigError, match="content_filter"):
            SmtpdSettings.from_settings(settings_from_text(f"content_filter = {value}\n", "m"))
