"""Every golden case gives its expected decision, log lines and queued content."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .golden_runner import GOLDEN, run_case, sections

CASES = sorted(GOLDEN.glob("*.case"))


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_golden_case(path: Path, tmp_path: Path) -> None:
    got = run_case(path, tmp_path)
    if os.environ.get("MTA_GOLDEN_UPDATE"):
        text = path.read_text()
        path.write_text(text[: text.index("== expect\n")] + "== expect\n" + got)
    assert got == sections(path.read_text())["expect"]


def test_there_are_cases_for_every_action() -> None:
    tables = "".join(path.read_text() for path in CASES).upper()
    for action in (
        "REJECT", "DISCARD", "HOLD", "WARN", "IGNORE", "STRIP", "PASS", "REPLACE", "PREPEND",
        "REDIRECT", "FILTER", "DUNNO", "OK",
    ):  # fmt: skip
        assert f"/ {action}" in tables, action
