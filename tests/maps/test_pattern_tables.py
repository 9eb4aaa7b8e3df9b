"""cidr: and regexp:/pcre: errors that name the file and line, and matching details that the
golden tables do not show (folded headers, bounds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.maps import LookupTable, TableFormatError, open_table
from mta.maps.table import MAX_MATCH_INPUT_BYTES


def table_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table"
    path.write_text(text)
    return path


def opened(kind: str, tmp_path: Path, text: str) -> LookupTable:
    return open_table(f"{kind}:{table_file(tmp_path, text)}", shared=False)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("10.0.0.1/8 x\n", "line 1: non-null host address bits in '10.0.0.1/8'"),
        ("10.0.0.0/33 x\n", "line 1: bad network pattern '10.0.0.0/33'"),
        ("10.0.0.0/8\n", "line 1: no result after '10.0.0.0/8'"),
        ("1.2.3.4 a\nendif\n", "line 2: endif without if"),
        ("if 10.0.0.0/8\n10.1.0.0/16 a\n", "line 1: if without endif"),
        ("if 10.0.0.0/8 extra\nendif\n", r"line 1: expected 'if \[!\]network/length'"),
    ],
)
def test_malformed_cidr_names_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    path = table_file(tmp_path, text)
    with pytest.raises(TableFormatError, match=f"^{path}, {error}"):
        open_table(f"cidr:{path}", shared=False)


@pytest.mark.parametrize(
    ("kind", "text", "error"),
    [
        ("regexp", "/a(b)/ $2\n", r"line 1: \$2 is out of range \(the pattern has 1 groups\)"),
        ("regexp", "/a(b)/ ${" + "9" * 5000 + "}\n", r"line 1: \$9{20} is out of range"),
        ("regexp", "!/a(b)/ $1\n", r"line 1: \$1 in the result of a negated pattern"),
        ("regexp", "/abc x\n", "line 1: missing closing '/' of the pattern"),
        ("regexp", "/abc/\n", "line 1: no result after the pattern"),
        ("regexp", "/a(/ x\n", r"line 1: bad pattern 'a\('"),
        ("regexp", "/a/x x\n", "line 1: POSIX basic regular expressions are not supported"),
        ("regexp", "/a/s x\n", "line 1: unknown flag 's'"),
        ("pcre", "/a/U x\n", r"line 1: flag U \(ungreedy\) is not supported"),
        ("pcre", "if /a/\n/b/ x\n", "line 1: if without endif"),
        ("pcre", "endif\n", "line 1: endif without if"),
        ("pcre", "if /a/ x\nendif\n", "line 1: text after the if pattern: 'x'"),
        ("pcre", "abc x\n", "line 1: expected /pattern/flags"),
    ],
)
def test_malformed_regexp_names_file_and_line(
    tmp_path: Path, kind: str, text: str, error: str
) -> None:
    path = table_file(tmp_path, text)
    with pytest.raises(TableFormatError, match=f"^{path}, {error}"):
        open_table(f"{kind}:{path}", shared=False)


def test_regexp_dot_crosses_the_newline_of_a_folded_header(tmp_path: Path) -> None:
    table = opened("regexp", tmp_path, "/^Subject:.*lottery/ REJECT\n")
    assert table.lookup("Subject: you won\n\tthe lottery") == "REJECT"


def test_pcre_dot_stops_at_a_newline_unless_the_s_flag(tmp_path: Path) -> None:
    text = "/^Subject:.*lottery/ plain\n/^Subject:.*prize/s dotall\n"
    table = opened("pcre", tmp_path, text)
    assert table.lookup("Subject: you won\n\tthe lottery") is None
    assert table.lookup("Subject: you won\n\ta prize") == "dotall"


def test_regexp_multiline_flag_anchors_at_each_line(tmp_path: Path) -> None:
    table = opened("regexp", tmp_path, "/^to:/m folded\n")
    assert table.lookup("X-Header: a\nTo: b") == "folded"


def test_keys_past_the_match_bound_are_not_found(tmp_path: Path) -> None:
    regexp = opened("regexp", tmp_path, "/a/ x\n")
    assert regexp.lookup("a" * (MAX_MATCH_INPUT_BYTES + 1)) is None
    cidr = opened("cidr", tmp_path, "0.0.0.0/0 x\n")
    assert cidr.lookup("1" * (MAX_MATCH_INPUT_BYTES + 1)) is None
