"""Real clients (smtplib, swaks, Postfix's smtp-source, raw BDAT) against a full instance:
every accepted message is delivered exactly once, to discard or to a Maildir byte-exact."""

from __future__ import annotations

import re
import smtplib
import socket
import subprocess
from collections import Counter
from pathlib import Path

from support.instance import Instance

from .mail import (
    QUEUED_AS,
    accepted_ids,
    log_lines,
    log_size,
    maildir_files,
    stored_message,
    submit,
    submit_on,
    unique_message,
    wait_for_stored,
    wait_until_delivered,
)

SMTP_SOURCE = "/usr/sbin/smtp-source"


def test_smtplib_mail_reaches_discard_and_maildir_once_each(discard_mta: Instance) -> None:
    offset = log_size(discard_mta)
    port = discard_mta.port
    remote = [
        submit(port, "a@x.example", [f"r{n}@y.example"], unique_message(f"remote {n}"))
        for n in range(5)
    ]
    bodies = {
        f"local-{n}-marker".encode(): unique_message(
            f"local {n}", f"local-{n}-marker\r\n..leading dot\r\n\r\nlast line\r\n"
        )
        for n in range(3)
    }
    local = [submit(port, "a@x.example", ["user@localhost"], body) for body in bodies.values()]
    # One message to two recipients: one to discard, one to the Maildir.
    both = submit(port, "a@x.example", ["r@y.example", "user@localhost"], unique_message("both"))
    lines = wait_until_delivered(
        discard_mta, Counter({**dict.fromkeys(remote + local, 1), both: 2}), offset
    )
    relays = {(line.queue_id, line.service) for line in lines if "status=sent" in line.text}
    assert {(queue_id, "discard") for queue_id in remote} <= relays
    assert {(queue_id, "local") for queue_id in local} <= relays
    assert {(both, "discard"), (both, "local")} <= relays
    for marker, message in bodies.items():
        stored = wait_for_stored(discard_mta, "user", marker)
        # smtplib dot-stuffs "..leading dot"; smtpd must un-stuff it back.
        assert stored_message(stored, "a@x.example", "user@localhost") == message.replace(
            b"\r\n", b"\n"
        )


def _swaks(port: int, *args: str, data: bytes | None = None) -> str:
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--from", "s@x.example", *args],
        input=data,
        capture_output=True,
        check=False,
        timeout=30,
    )
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, output + result.stderr.decode("utf-8", "replace")
    return output


def _queue_id(swaks_output: str) -> str:
    [queue_id] = [m["id"] for m in QUEUED_AS.finditer(swaks_output)]
    return queue_id


def test_swaks_plain_pipelined_and_8bit_messages_are_delivered(discard_mta: Instance) -> None:
    offset = log_size(discard_mta)
    port = discard_mta.port
    plain = _queue_id(_swaks(port, "--to", "b@y.example", "--body", "plain swaks body"))
    pipelined_output = _swaks(
        port, "--pipeline", "--to", "b@y.example,c@z.example", "--body", "pipelined body"
    )
    assert "PIPELINING" in pipelined_output
    pipelined = _queue_id(pipelined_output)
    eight_bit = (
        "Subject: =?utf-8?q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Grüße aus Köln, ½ € — 8bit-marker\r\n.dot at start\r\n"
    ).encode()
    # swaks ends DATA with CRLF "." CRLF after the data it is given: no final CRLF here.
    eight = _queue_id(_swaks(port, "--to", "user@localhost", "--data", "-", data=eight_bit[:-2]))
    wait_until_delivered(discard_mta, Counter({plain: 1, pipelined: 2, eight: 1}), offset)
    stored = wait_for_stored(discard_mta, "user", b"8bit-marker")
    assert stored_message(stored, "s@x.example", "user@localhost") == eight_bit.replace(
        b"\r\n", b"\n"
    )


def test_bdat_chunks_over_a_raw_socket_arrive_byte_exact(discard_mta: Instance) -> None:
    offset = log_size(discard_mta)
    message = (
        b"Subject: chunked\r\n\r\nfirst chunk bdat-marker\r\n"
        b".a line with a leading dot, not stuffed in BDAT\r\n"
        b"\xc3\xa9 binary-ish \x01\x7f\xff bytes\r\nend\r\n"
    )
    first, second = message[:30], message[30:]
    with socket.create_connection(("127.0.0.1", discard_mta.port), timeout=10) as sock:
        reader = sock.makefile("rb")

        def reply() -> bytes:
            lines = [reader.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(reader.readline())
            return b"".join(lines)

        assert reply().startswith(b"220 ")
        sock.sendall(b"EHLO client.example\r\n")
        assert b"CHUNKING" in reply()
        sock.sendall(b"MAIL FROM:<c@x.example> BODY=BINARYMIME\r\n")
        mail_reply = reply()
        if not mail_reply.startswith(b"250"):  # BINARYMIME is not advertised: plain MAIL
            sock.sendall(b"MAIL FROM:<c@x.example>\r\n")
            assert reply().startswith(b"250")
        sock.sendall(b"RCPT TO:<user@localhost>\r\n")
        assert reply().startswith(b"250")
        sock.sendall(b"BDAT %d\r\n" % len(first) + first)
        assert reply().startswith(b"250")
        sock.sendall(b"BDAT %d LAST\r\n" % len(second) + second)
        last = reply().decode()
        assert last.startswith("250"), last
        match = QUEUED_AS.search(last)
        assert match
        sock.sendall(b"QUIT\r\n")
        assert reply().startswith(b"221")
    wait_until_delivered(discard_mta, Counter({match["id"]: 1}), offset)
    stored = wait_for_stored(discard_mta, "user", b"bdat-marker")
    assert stored_message(stored, "c@x.example", "user@localhost") == message.replace(
        b"\r\n", b"\n"
    )


def _smtp_source(port: int, *args: str) -> None:
    result = subprocess.run(
        [SMTP_SOURCE, *args, f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_smtp_source_volume_is_delivered_exactly_once(discard_mta: Instance) -> None:
    offset = log_size(discard_mta)
    files_before = set(maildir_files(discard_mta, "user"))
    port = discard_mta.port
    volume = "-s 10 -m 500 -l 1024 -d -f a@x.example -t b@y.example"
    _smtp_source(port, *volume.split())
    _smtp_source(
        port, *["-s", "5", "-m", "40", "-l", "2048", "-f", "a@x.example", "-t", "user@localhost"]
    )
    ids = accepted_ids(log_lines(discard_mta, offset))
    assert len(ids) == 540 == len(set(ids))
    lines = wait_until_delivered(discard_mta, Counter(dict.fromkeys(ids, 1)), offset)
    local = [line for line in lines if line.service == "local" and "status=sent" in line.text]
    assert len(local) == 40
    new_files = set(maildir_files(discard_mta, "user")) - files_before
    assert len(new_files) == 40


def test_sessions_reuse_one_connection_for_many_messages(discard_mta: Instance) -> None:
    offset = log_size(discard_mta)
    with smtplib.SMTP("127.0.0.1", discard_mta.port, timeout=10) as client:
        ids = [
            submit_on(client, f"s{n}@x.example", [f"r{n}@y.example"], unique_message(str(n)))
            for n in range(20)
        ]
        client.rset()
    assert len(set(ids)) == 20
    lines = wait_until_delivered(discard_mta, Counter(dict.fromkeys(ids, 1)), offset)
    for n, queue_id in enumerate(ids):
        assert any(
            line.queue_id == queue_id and re.match(rf"from=<s{n}@x\.example>, size=\d+", line.rest)
            for line in lines
        )


def test_maildir_has_no_stray_temporary_files(discard_mta: Instance) -> None:
    submit(discard_mta.port, "a@x.example", ["user@localhost"], unique_message("tmp check"))
    tmp = Path(discard_mta.data / "mail" / "user" / "Maildir" / "tmp")
    wait_until_delivered(discard_mta, Counter(), 0, exact=False)
    assert list(tmp.iterdir()) == []
