"""The log is Postfix's: per message the same sequence of lines, and pflogsumm reads it."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

from support.instance import Instance

from .mail import SENT, LogLine, log_size, submit, unique_message, wait_until_delivered

FROM = re.compile(
    r"^from=<(?P<sender>[^>]*)>, size=(?P<size>\d+), nrcpt=(?P<nrcpt>\d+) \(queue active\)$"
)


def _positions(lines: list[LogLine], queue_id: str, rest: re.Pattern[str]) -> list[int]:
    return [
        number
        for number, line in enumerate(lines)
        if line.queue_id == queue_id and rest.match(line.rest)
    ]


CLIENT = re.compile(r"client=unknown\[127\.0\.0\.1\]$")
REMOVED = re.compile(r"removed$")


def test_each_message_logs_postfix_sequence_from_connect_to_removed(
    discard_mta: Instance,
) -> None:
    offset = log_size(discard_mta)
    port = discard_mta.port
    recipients: dict[str, int] = {}
    for n in range(4):
        to = ["r@y.example", "user@localhost"][: n % 2 + 1]
        recipients[submit(port, f"s{n}@x.example", to, unique_message(f"sequence {n}"))] = len(to)
    lines = wait_until_delivered(discard_mta, Counter(recipients), offset)
    for queue_id, nrcpt in recipients.items():
        [client] = _positions(lines, queue_id, CLIENT)
        smtpd = lines[client].pid
        session = [(n, line.text) for n, line in enumerate(lines) if line.pid == smtpd]
        assert any(n < client and text == "connect from unknown[127.0.0.1]" for n, text in session)
        disconnect = next(
            text
            for n, text in session
            if n > client and text.startswith("disconnect from unknown[127.0.0.1] ")
        )
        assert f"mail=1 rcpt={nrcpt} data=1" in disconnect
        [queued] = _positions(lines, queue_id, FROM)
        match = FROM.match(lines[queued].rest)
        assert match is not None and int(match["nrcpt"]) == nrcpt
        sent = _positions(lines, queue_id, SENT)
        assert len(sent) == nrcpt
        [removed] = _positions(lines, queue_id, REMOVED)
        assert lines[queued].service == lines[removed].service == "qmgr"
        assert client < queued < min(sent) <= max(sent) < removed
        mine = [line.text for line in lines if line.queue_id == queue_id]
        assert len(mine) == 3 + nrcpt, mine


TOTAL = re.compile(r"^\s+(?P<count>\d+)(?P<unit>k?)\s+(?P<name>[a-z /]+?)(?: \(\d+%\))?$", re.M)


def _pflogsumm(log: Path) -> dict[str, int]:
    result = subprocess.run(
        ["pflogsumm", "--syslog-name=mta", str(log)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    totals = result.stdout.split("Grand Totals", 1)[1].split("Per-Hour", 1)[0]
    return {
        match["name"]: int(match["count"]) * (1024 if match["unit"] == "k" else 1)
        for match in TOTAL.finditer(totals)
    }


def test_pflogsumm_counts_what_was_received_and_delivered(
    discard_mta: Instance, tmp_path: Path
) -> None:
    offset = log_size(discard_mta)
    port = discard_mta.port
    ids = [
        submit(port, "p@x.example", ["a@y.example", "user@localhost"], unique_message(f"p{n}"))
        for n in range(4)
    ]
    ids.append(submit(port, "q@x.example", ["b@z.example"], unique_message("single")))
    lines = wait_until_delivered(
        discard_mta, Counter({**dict.fromkeys(ids[:4], 2), ids[4]: 1}), offset
    )
    sizes = sum(
        int(match["size"]) for line in lines if (match := FROM.match(line.rest)) is not None
    )
    excerpt = tmp_path / "maillog"
    excerpt.write_bytes(discard_mta.log.read_bytes()[offset:])
    totals = _pflogsumm(excerpt)
    assert totals["received"] == 5
    assert totals["delivered"] == 9
    assert totals["deferred"] == totals["bounced"] == totals["rejected"] == 0
    assert totals["bytes received"] == sizes
    assert totals["senders"] == 2
    assert totals["recipients"] == 3
