"""Clients and log readers for the end-to-end tests."""

from __future__ import annotations

import re
import smtplib
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.instance import Instance, wait_for

LOG_LINE = re.compile(
    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ mta/(?P<service>[\w-]+)\[(?P<pid>\d+)\]: "
    r"(?P<text>.*)$"
)
QUEUE_ID = re.compile(r"^(?P<id>[0-9A-Za-z]{6,}): (?P<rest>.*)$")
QUEUED_AS = re.compile(r"queued as (?P<id>[0-9A-Za-z]+)")
SENT = re.compile(
    r"^to=<(?P<to>[^>]*)>, relay=(?P<relay>[^,]+), delay=[\d.]+, "
    r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(.*\)$"
)
DELIVERY_SECONDS = 30.0


@dataclass(frozen=True)
class LogLine:
    number: int
    service: str
    pid: int
    text: str

    @property
    def queue_id(self) -> str | None:
        match = QUEUE_ID.match(self.text)
        return match["id"] if match else None

    @property
    def rest(self) -> str:
        match = QUEUE_ID.match(self.text)
        return match["rest"] if match else self.text


def log_lines(instance: Instance, offset: int = 0) -> list[LogLine]:
    """Every line of the instance's log from byte offset on; all must be Postfix-format."""
    data = instance.log.read_bytes()[offset:]
    # Read while services write: a last line without its newline is still being written.
    data = data[: data.rfind(b"\n") + 1]
    lines = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines()):
        match = LOG_LINE.match(raw)
        assert match, f"not a Postfix-format log line: {raw!r}"
        lines.append(LogLine(number, match["service"], int(match["pid"]), match["text"]))
    return lines


def log_size(instance: Instance) -> int:
    return instance.log.stat().st_size


def sent_counts(lines: list[LogLine]) -> Counter[str]:
    """Queue id → number of `status=sent` lines."""
    return Counter(
        line.queue_id for line in lines if line.queue_id and SENT.match(line.rest) is not None
    )


def accepted_ids(lines: list[LogLine]) -> list[str]:
    """Queue ids smtpd logged `client=` for, in log order."""
    return [
        line.queue_id
        for line in lines
        if line.service == "smtpd" and line.queue_id and line.rest.startswith("client=")
    ]


def unique_message(subject: str, body: str = "body line\r\n") -> bytes:
    return (
        f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@e2e.example>\r\n\r\n{body}"
    ).encode()


def submit(
    port: int, sender: str, recipients: list[str], message: bytes, timeout: float = 10
) -> str:
    """One message over one SMTP session; returns the queue id of the 250 reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as client:
        return submit_on(client, sender, recipients, message)


def submit_on(client: smtplib.SMTP, sender: str, recipients: list[str], message: bytes) -> str:
    code, text = client.mail(sender)
    assert code == 250, text
    for recipient in recipients:
        code, text = client.rcpt(recipient)
        assert code == 250, (recipient, text)
    code, text = client.data(message)
    assert code == 250, text
    match = QUEUED_AS.search(text.decode())
    assert match, text
    return match["id"]


def wait_until_delivered(
    instance: Instance, expected: Counter[str], offset: int = 0, exact: bool = True
) -> list[LogLine]:
    """Wait for `expected[id]` status=sent lines per queue id and an empty queue.

    exact: no id may have more sent lines than expected. Returns the log lines from offset."""

    def done() -> list[LogLine] | None:
        lines = log_lines(instance, offset)
        counts = sent_counts(lines)
        if any(counts[queue_id] < number for queue_id, number in expected.items()):
            return None
        return lines if instance.queued() == 0 else None

    deadline = time.monotonic() + DELIVERY_SECONDS
    lines: list[LogLine] | None = None
    while time.monotonic() < deadline and lines is None:
        lines = done()
        if lines is None:
            time.sleep(0.05)
    if lines is None:
        counts = sent_counts(log_lines(instance, offset))
        missing = sorted(i for i, n in expected.items() if counts[i] < n)
        pytest.fail(f"not delivered: {missing[:20]} ({len(missing)}); queued {instance.queued()}")
    if exact:
        counts = sent_counts(lines)
        extra = {i: counts[i] for i in expected if counts[i] != expected[i]}
        assert not extra, f"delivered more than once: {extra}"
    return lines


def maildir_new(instance: Instance, user: str) -> Path:
    return instance.data / "mail" / user / "Maildir" / "new"


def maildir_files(instance: Instance, user: str) -> dict[str, bytes]:
    directory = maildir_new(instance, user)
    if not directory.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def stored_message(file: bytes, sender: str, recipient: str) -> bytes:
    """What the local agent stored after its Return-Path, Delivered-To and our Received
    header, checking those three on the way; the rest is the message as the client sent it,
    with LF line ends."""
    prefix = f"Return-Path: <{sender}>\nDelivered-To: {recipient}\n".encode()
    assert file.startswith(prefix), file[:200]
    rest = file[len(prefix) :]
    assert rest.startswith(b"Received: "), rest[:200]
    lines = rest.split(b"\n")
    end = 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return b"\n".join(lines[end:])


def find_stored(instance: Instance, user: str, marker: bytes) -> list[bytes]:
    return [data for data in maildir_files(instance, user).values() if marker in data]


def wait_for_stored(instance: Instance, user: str, marker: bytes) -> bytes:
    found: list[bytes] = wait_for(
        lambda: find_stored(instance, user, marker), f"a Maildir file for {user}"
    )
    assert len(found) == 1, f"{len(found)} copies in the Maildir"
    return found[0]
