"""Limits and hostile input are refused with Postfix's replies, and the instance keeps
serving: after each, a normal message is accepted and delivered, by the same workers."""

from __future__ import annotations

import os
import random
import smtplib
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from support.instance import Instance

from .mail import (
    accepted_ids,
    log_lines,
    log_size,
    submit,
    unique_message,
    wait_for_stored,
    wait_until_delivered,
)

LIMIT = 20000  # message_size_limit of guarded_mta
RECIPIENT_LIMIT = 5


@pytest.fixture
def still_serving(guarded_mta: Instance) -> Iterator[Instance]:
    """After the test: no queue id appeared that was not delivered, the same child processes
    are running, and a normal message goes through to the Maildir."""
    before = guarded_mta.status()
    assert before is not None
    offset = log_size(guarded_mta)
    yield guarded_mta
    marker = uuid.uuid4().hex
    message = unique_message("still serving", f"{marker}\r\n")
    queue_id = submit(guarded_mta.port, "ok@x.example", ["user@localhost"], message)
    wait_until_delivered(guarded_mta, Counter({queue_id: 1}), offset, exact=False)
    wait_for_stored(guarded_mta, "user", marker.encode())
    status = guarded_mta.status()
    assert status is not None
    assert guarded_mta.all_pids(status) == guarded_mta.all_pids(before), "a child was restarted"


class Conversation:
    """A raw SMTP client: send bytes, read whole replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        assert self.reply().startswith(b"220 ")

    def reply(self) -> bytes:
        lines = [self.reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.reader.readline())
        return b"".join(lines)

    def ask(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.reply()

    def closed_by_server(self) -> bool:
        return self.reader.read() == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def test_oversize_message_gets_552_and_is_not_queued(still_serving: Instance) -> None:
    offset = log_size(still_serving)
    with smtplib.SMTP("127.0.0.1", still_serving.port, timeout=10) as client:
        client.ehlo()
        assert client.mail("a@x.example", [f"SIZE={LIMIT + 1}"])[0] == 552
        assert client.mail("a@x.example")[0] == 250
        assert client.rcpt("user@localhost")[0] == 250
        code, text = client.data(b"Subject: big\r\n\r\n" + b"x" * 998 * 25)
        assert (code, text) == (552, b"5.3.4 Error: message file too big")
        assert client.noop()[0] == 250
    assert accepted_ids(log_lines(still_serving, offset)) == []


def test_recipient_past_the_limit_gets_452_and_the_rest_are_delivered(
    still_serving: Instance,
) -> None:
    offset = log_size(still_serving)
    with smtplib.SMTP("127.0.0.1", still_serving.port, timeout=10) as client:
        assert client.mail("a@x.example")[0] == 250
        for n in range(RECIPIENT_LIMIT):
            assert client.rcpt(f"user{n}@localhost")[0] == 250
        assert client.rcpt("extra@localhost") == (452, b"4.5.3 Error: too many recipients")
        code, text = client.data(unique_message("five"))
        assert code == 250
    [queue_id] = accepted_ids(log_lines(still_serving, offset))
    assert queue_id in text.decode()
    wait_until_delivered(still_serving, Counter({queue_id: RECIPIENT_LIMIT}), offset)


def test_bare_lf_in_data_gets_521_and_the_connection_is_closed(still_serving: Instance) -> None:
    offset = log_size(still_serving)
    conversation = Conversation(still_serving.port)
    assert conversation.ask(b"EHLO c.example\r\n").startswith(b"250")
    assert conversation.ask(b"MAIL FROM:<a@x.example>\r\n").startswith(b"250")
    assert conversation.ask(b"RCPT TO:<user@localhost>\r\n").startswith(b"250")
    assert conversation.ask(b"DATA\r\n").startswith(b"354")
    reply = conversation.ask(b"Subject: x\r\n\r\nbare\nLF\r\n.\r\n")
    assert reply == b"521 5.5.2 Error: bare <LF> received\r\n"
    assert conversation.closed_by_server()
    conversation.close()
    assert accepted_ids(log_lines(still_serving, offset)) == []


def test_overlong_command_line_gets_500_and_the_session_goes_on(still_serving: Instance) -> None:
    conversation = Conversation(still_serving.port)
    assert conversation.ask(b"EHLO " + b"h" * 5000 + b"\r\n") == (
        b"500 5.5.2 Error: line too long\r\n"
    )
    assert conversation.ask(b"NOOP\r\n").startswith(b"250")
    conversation.close()


def test_relay_from_outside_mynetworks_gets_554_relay_access_denied(
    still_serving: Instance,
) -> None:
    offset = log_size(still_serving)
    with smtplib.SMTP("127.0.0.1", still_serving.port, timeout=10) as client:
        assert client.mail("a@x.example")[0] == 250
        assert client.rcpt("someone@example.net") == (
            554,
            b"5.7.1 <someone@example.net>: Relay access denied",
        )
        assert client.rcpt("user@localhost")[0] == 250  # ours: still accepted
    texts = [line.text for line in log_lines(still_serving, offset)]
    assert any(
        text.startswith("NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 ")
        and "Relay access denied; from=<a@x.example> to=<someone@example.net>" in text
        for text in texts
    ), texts


def test_random_binary_garbage_is_answered_and_survived(still_serving: Instance) -> None:
    generator = random.Random(4)
    for _ in range(5):
        garbage = bytes(generator.getrandbits(8) for _ in range(8192))
        with socket.create_connection(("127.0.0.1", still_serving.port), timeout=10) as sock:
            assert sock.recv(512).startswith(b"220 ")
            sock.sendall(garbage + b"\r\n" + garbage[:100].replace(b"\n", b"") + b"\r\n")
            sock.settimeout(5)
            replies = b""
            while (chunk := sock.recv(65536)) and len(replies) < 1000:
                replies += chunk
        # Each reply is a well-formed SMTP reply line: 5yz errors (bad syntax, line too long,
        # too many errors...), never an acceptance of a command.
        for line in replies.splitlines():
            assert line[:1] == b"5" or line.startswith(b"421"), line


def test_disconnect_in_the_middle_of_data_queues_nothing(still_serving: Instance) -> None:
    offset = log_size(still_serving)
    conversation = Conversation(still_serving.port)
    conversation.ask(b"EHLO c.example\r\n")
    assert conversation.ask(b"MAIL FROM:<a@x.example>\r\n").startswith(b"250")
    assert conversation.ask(b"RCPT TO:<user@localhost>\r\n").startswith(b"250")
    assert conversation.ask(b"DATA\r\n").startswith(b"354")
    conversation.sock.sendall(b"Subject: cut\r\n\r\n" + b"half a message\r\n" * 100)
    conversation.close()
    lost = "lost connection after DATA from unknown[127.0.0.1]"
    deadline = time.monotonic() + 10
    while not any(lost in line.text for line in log_lines(still_serving, offset)):
        assert time.monotonic() < deadline, "no 'lost connection' line"
        time.sleep(0.05)
    assert accepted_ids(log_lines(still_serving, offset)) == []
    assert still_serving.queued() == 0


def test_two_hundred_connections_opened_and_dropped_at_once(still_serving: Instance) -> None:
    sockets = []
    for n in range(200):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if n % 2:  # half of them reset rather than closed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", still_serving.port))
        sockets.append(sock)
    for sock in sockets:
        sock.close()
    # A mixture: some sent half a command first.
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", still_serving.port), timeout=10) as sock:
            sock.sendall(b"EHLO half" + os.urandom(3).hex().encode())
