"""Every limit smtpd enforces, and what happens past it, over real sockets."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from hotpath.events import Event, Noop
from mta.smtpd.session import EVENT_HANDLERS, EventHandler, SmtpSession

from .harness import RunningServer, StartServer, read_replies, read_reply

ENVELOPE = b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n"


def open_data(server: RunningServer) -> socket.socket:
    sock = server.connect()
    read_reply(sock)
    sock.sendall(ENVELOPE)
    assert read_replies(sock, 4).endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    return sock


def test_queue_full_gets_452_and_keeps_what_is_queued(start_server: StartServer) -> None:
    server = start_server("queue_map_size = 131072\nqueue_max_size = 262144\n")
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 60
    replies = []
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        for _ in range(10):
            try:
                client.sendmail("a@example.org", ["root@localhost"], body)
                replies.append(250)
            except smtplib.SMTPDataError as error:
                replies.append(error.smtp_code)
                assert error.smtp_error == b"4.3.1 Insufficient system storage"
    assert 452 in replies and replies[0] == 250
    assert len(server.messages()) == replies.count(250)


def test_message_over_size_limit_gets_552(start_server: StartServer) -> None:
    server = start_server("message_size_limit = 2000\n")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        assert client.ehlo()[1].split(b"\n")[2] == b"SIZE 2000"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE=3002 declared
            client.sendmail("a@example.org", ["root@localhost"], b"x" * 3000 + b"\r\n")
        assert refused.value.smtp_code == 552
    with open_data(server) as sock:  # undeclared: read to the end, then refused
        sock.sendall(b"x" * 3000 + b"\r\n.\r\nNOOP\r\n")
        assert read_replies(sock, 2) == (
            b"552 5.3.4 Error: message file too big\r\n250 2.0.0 Ok\r\n"
        )
    assert server.messages() == []


def test_recipients_over_limit_get_452(start_server: StartServer) -> None:
    server = start_server("smtpd_recipient_limit = 2\n")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        client.mail("a@example.org")
        assert client.rcpt("r1@localhost")[0] == 250
        assert client.rcpt("r2@localhost")[0] == 250
        assert client.rcpt("r3@localhost") == (452, b"4.5.3 Error: too many recipients")


def test_command_line_too_long_gets_500_and_session_goes_on(server: RunningServer) -> None:
    with server.connect() as sock:
        read_reply(sock)
        sock.sendall(b"NOOP " + b"x" * 2000 + b"\r\nNOOP\r\n")
        assert read_replies(sock, 2) == b"500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"


def test_bare_lf_gets_521_and_disconnect(server: RunningServer) -> None:
    sock = open_data(server)
    with sock:
        sock.sendall(b"Subject: smuggle\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\n")
        assert read_reply(sock) == b"521 5.5.2 Error: bare <LF> received\r\n"
        assert sock.recv(100) == b""
    assert server.messages() == []


def test_hard_error_limit_gets_421_and_close(start_server: StartServer) -> None:
    server = start_server("smtpd_hard_error_limit = 3\n")
    with server.connect() as sock:
        read_reply(sock)
        sock.sendall(b"BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n")
        replies = read_replies(sock, 4)
        assert replies.split(b"\r\n")[2:4] == [
            b"502 5.5.2 Error: command not recognized",
            b"421 4.7.0 " + server.settings.get("myhostname").encode() + b" Error: too many errors",
        ]
        assert sock.recv(100) == b""


def test_idle_client_times_out_with_421(start_server: StartServer) -> None:
    server = start_server("smtpd_timeout = 1s\n")
    with server.connect() as sock:
        read_reply(sock)
        started = time.monotonic()
        reply = read_reply(sock)
        assert reply.startswith(b"421 4.4.2 ") and reply.endswith(b" Error: timeout exceeded\r\n")
        assert 0.9 < time.monotonic() - started < 3
        assert sock.recv(100) == b""


def test_unexpected_exception_ends_only_that_session(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: SmtpSession, event: object) -> None:
        raise RuntimeError("boom")

    with server.connect() as healthy:
        read_reply(healthy)
        handlers: dict[type[Event], EventHandler] = EVENT_HANDLERS
        noop: type[Event] = Noop
        monkeypatch.setitem(handlers, noop, explode)
        with server.connect() as broken:
            read_reply(broken)
            broken.sendall(b"NOOP\r\n")
            reply = read_reply(broken)
            assert reply.startswith(b"421 4.3.0 ") and b"Server internal error" in reply
            assert broken.recv(100) == b""
        healthy.sendall(b"RSET\r\n")
        assert read_reply(healthy) == b"250 2.0.0 Ok\r\n"
