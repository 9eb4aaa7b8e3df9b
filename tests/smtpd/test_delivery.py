"""End to end over real sockets: what a client sends is what the queue holds, and when."""

from __future__ import annotations

import logging
import smtplib
import time

import pytest

from mta.queue import BodyType, DsnRet, Notify
from mta.util.trigger import SCAN_INCOMING, TriggerReceiver, trigger_path

from .harness import RunningServer, StartServer, read_replies, read_reply

BODY = b"Subject: test\r\nFrom: a@example.org\r\n\r\nline one\r\n.leading dot\r\n\r\nend\r\n"


def split_received(content: bytes) -> tuple[bytes, bytes]:
    """(our Received header, the rest) of queued content."""
    assert content.startswith(b"Received: from ")
    end = content.index(b"\r\n", content.index(b"; ")) + 2
    return content[:end], content[end:]


def test_message_is_queued_byte_identical_with_envelope(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo("client.example")
        refused = client.sendmail(
            "sender@example.org",
            ["root@localhost", "postmaster@localhost"],
            BODY,
            mail_options=["RET=HDRS", "ENVID=env+2Bid", "BODY=8BITMIME"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Bx@example.org"],
        )
    assert refused == {}
    [message] = server.messages()
    assert message.sender == "sender@example.org"
    assert [r.recipient.address for r in message.recipients] == [
        "root@localhost",
        "postmaster@localhost",
    ]
    for state in message.recipients:
        assert state.recipient.notify == Notify.SUCCESS | Notify.FAILURE
        assert state.recipient.orcpt == "rfc822;orig+x@example.org"
    assert message.dsn_ret == DsnRet.HDRS
    assert message.envid == "env+id"
    assert message.body_type == BodyType.EIGHT_BIT_MIME
    assert message.extras == {
        "client_name": "unknown",
        "client_address": "127.0.0.1",
        "protocol": "ESMTP",
        "helo_name": "client.example",
    }
    header, rest = split_received(server.content(message.queue_id))
    assert rest == BODY.replace(b"\r\n..", b"\r\n.")  # smtplib dot-stuffs, we unstuff
    assert header.startswith(b"Received: from client.example (unknown [127.0.0.1])\r\n\tby ")
    # The queue put the message's own id where smtpd left a placeholder (Postfix's "id ...").
    # Two recipients: no "for <...>".
    assert f"(mta) with ESMTP id {message.queue_id}; ".encode() in header


def test_one_recipient_is_named_in_received_header(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("a@example.org", ["root@localhost"], BODY)
    [message] = server.messages()
    header, _ = split_received(server.content(message.queue_id))
    assert f"with ESMTP id {message.queue_id}\r\n\tfor <root@localhost>; ".encode() in header


def test_smtputf8_addresses_are_queued(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo("client.example")
        client.command_encoding = "utf-8"
        client.sendmail("jösé@exämple.org", ["rööt@localhost"], BODY, mail_options=["SMTPUTF8"])
    [message] = server.messages()
    assert message.smtputf8
    assert message.sender == "jösé@exämple.org"
    assert message.recipients[0].recipient.address == "rööt@localhost"
    assert message.extras["protocol"] == "UTF8SMTP"


def test_bdat_chunks_are_queued_as_sent(server: RunningServer) -> None:
    with server.connect() as sock:
        read_reply(sock)
        sock.sendall(b"EHLO client.example\r\n")
        read_reply(sock)
        sock.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\n")
        assert read_replies(sock, 2) == b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
        first, last = b"Subject: bdat\r\n\r\n.dot kept\r\n", b"binary\x00ok\r\n"
        sock.sendall(b"BDAT %d\r\n%s" % (len(first), first))
        assert read_reply(sock) == b"250 2.0.0 Ok: %d bytes\r\n" % len(first)
        sock.sendall(b"BDAT %d LAST\r\n%s" % (len(last), last))
        reply = read_reply(sock)
        assert reply.startswith(b"250 2.0.0 Ok: queued as ")
        [message] = server.messages()
        assert reply == b"250 2.0.0 Ok: queued as %s\r\n" % message.queue_id.encode()
    assert split_received(server.content(message.queue_id))[1] == first + last


def test_250_is_sent_only_when_the_message_is_in_the_queue(server: RunningServer) -> None:
    with server.connect() as sock:
        read_reply(sock)
        sock.sendall(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n")
        read_replies(sock, 4)
        for serial in range(5):
            sock.sendall(b"Subject: %d\r\n\r\nbody\r\n.\r\n" % serial)
            reply = read_reply(sock)
            queue_id = reply.removeprefix(b"250 2.0.0 Ok: queued as ").strip().decode()
            # The reply arrived: the message must already be durable in the queue.
            assert queue_id in {m.queue_id for m in server.messages()}
            sock.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n")
            read_replies(sock, 3)


def test_pipelined_group_is_answered_in_one_write(server: RunningServer) -> None:
    with server.connect() as sock:
        read_reply(sock)
        sock.sendall(b"EHLO client.example\r\n")
        read_reply(sock)
        sock.sendall(
            b"MAIL FROM:<a@example.org>\r\nRCPT TO:<root@localhost>\r\n"
            b"RCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n"
        )
        # One recv gets every reply: they were written together, after the whole group.
        sock.settimeout(5)
        assert sock.recv(65536) == (
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
            b"354 End data with <CR><LF>.<CR><LF>\r\n"
        )


def test_replies_follow_postfix(server: RunningServer) -> None:
    with server.connect() as sock:
        assert read_reply(sock).endswith(b" ESMTP mta\r\n")
        sock.sendall(b"EHLO client.example\r\n")
        ehlo = read_reply(sock).split(b"\r\n")
        assert ehlo[1:-1] == [
            b"250-PIPELINING",
            b"250-SIZE 10240000",
            b"250-VRFY",
            b"250-ENHANCEDSTATUSCODES",
            b"250-8BITMIME",
            b"250-DSN",
            b"250-SMTPUTF8",
            b"250 CHUNKING",
        ]
        for command, expected in [
            (b"VRFY <someone@localhost>", b"252 2.0.0 <someone@localhost>"),
            (b"NOOP", b"250 2.0.0 Ok"),
            (b"RSET", b"250 2.0.0 Ok"),
            (b"EXPN staff", b"502 5.5.2 Error: command not recognized"),
            (b"AUTH PLAIN", b"503 5.5.1 Error: authentication not enabled"),
            (b"QUIT", b"221 2.0.0 Bye"),
        ]:
            sock.sendall(command + b"\r\n")
            assert read_reply(sock) == expected + b"\r\n"
        assert sock.recv(100) == b""


def test_session_log_lines_follow_postfix(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mta.smtpd")
    server = start_server("mynetworks = 10.0.0.0/8\n")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo("client.example")
        client.sendmail("a@example.org", ["root@localhost"], BODY)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("a@example.org", ["x@elsewhere.example"], BODY)
    server.stop()  # every session has ended and logged
    lines = [r.getMessage() for r in caplog.records if r.name == "mta.smtpd"]
    session = [line for line in lines if "listening" not in line and "stopping" not in line]
    assert session[0] == "connect from unknown[127.0.0.1]"
    assert session[1].endswith(": client=unknown[127.0.0.1]")
    assert session[2] == (
        "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <x@elsewhere.example>:"
        " Relay access denied; from=<a@example.org> to=<x@elsewhere.example> proto=ESMTP"
        " helo=<client.example>"
    )
    assert session[-1] == (
        "disconnect from unknown[127.0.0.1] ehlo=1 mail=2 rcpt=1/2 data=1 rset=1 quit=1"
        " commands=7/8"
    )


def test_durable_commit_wakes_qmgr(server: RunningServer) -> None:
    receiver = TriggerReceiver(trigger_path(server.settings.queue_directory))
    try:
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.sendmail("a@example.org", ["root@localhost"], BODY)
            deadline = time.monotonic() + 5
            requests: set[bytes] = set()
            while not requests and time.monotonic() < deadline:
                requests = receiver.drain()
                time.sleep(0.01)
        assert requests == {SCAN_INCOMING}
    finally:
        receiver.close()
