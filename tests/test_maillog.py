"""Postfix-format log lines: both ways in share one sink and keep their order."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from mta.util import maillog

LINE = re.compile(r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ mta/smtpd\[(\d+)\]: (.*)$")


def test_lines_from_logging_and_line_share_the_file_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(maillog, "_sink", None)  # restored afterwards: the fd is the test's
    log = tmp_path / "maillog"
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        maillog.configure("smtpd", path=log)
        maillog.line("connect from unknown[127.0.0.1]")
        logging.getLogger("mta.smtpd").warning("warning: something odd")
        maillog.line("08DtdOX0Mo: client=unknown[127.0.0.1]")
    finally:
        root.handlers[:], root.level = saved
    lines = log.read_text().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [match.group(2) for match in parsed if match] == [
        "connect from unknown[127.0.0.1]",
        "warning: something odd",
        "08DtdOX0Mo: client=unknown[127.0.0.1]",
    ]
    assert {int(match.group(1)) for match in parsed if match} == {os.getpid()}


def test_a_log_that_cannot_be_written_is_dropped_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maillog, "_sink", None)
    read_end, write_end = os.pipe()
    os.close(read_end)  # writing now fails with EPIPE
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        with os.fdopen(write_end, "w") as stream:
            maillog.configure("smtpd", stream=stream)
            maillog.line("connect from unknown[127.0.0.1]")
    finally:
        root.handlers[:], root.level = saved
