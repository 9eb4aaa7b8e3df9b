"""The inspector beyond the golden cases: any split of the input, table failures, bounds, and
the promise that it stops looking once no table can see anything more."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mta.cleanup import CheckSpecs, ContentChecks, ContentInspector
from mta.config.maincf import settings_from_text
from mta.maps import LookupTable, TableUnavailable, open_table

from .golden_runner import GOLDEN, run_case

CASES = sorted(GOLDEN.glob("*.case"))


class FailingTable(LookupTable):
    def lookup(self, key: str) -> str | None:
        raise self.unavailable("connection refused")


class CountingTable(LookupTable):
    """Answers nothing, and remembers every key it was asked."""

    def __init__(self) -> None:
        super().__init__("counting:")
        self.keys: list[str] = []

    def lookup(self, key: str) -> str | None:
        self.keys.append(key)
        return None


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=30))
def test_any_split_of_the_input_gives_the_same_result(
    path: Path, tmp_path: Path, cuts: list[int]
) -> None:
    assert run_case(path, tmp_path, cuts) == run_case(path, tmp_path)


def test_one_byte_at_a_time_gives_the_same_result(tmp_path: Path) -> None:
    for path in CASES:
        assert run_case(path, tmp_path, [1] * 2000) == run_case(path, tmp_path), path.stem


def test_a_table_that_cannot_answer_defers_the_message() -> None:
    inspector = ContentInspector(ContentChecks(header=(FailingTable("redis:failing"),)))
    inspector.feed(b"Subject: x\r\n\r\nbody\r\n")
    inspection = inspector.finish()
    assert inspection.reply == (451, "4.3.0", "Temporary lookup failure")
    assert inspection.failure == "table redis:failing is unavailable: connection refused"


def test_with_header_checks_only_the_body_is_never_looked_at() -> None:
    table = CountingTable()
    inspector = ContentInspector(ContentChecks(header=(table,)))
    inspector.feed(b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
    inspector.feed(b"--b\r\nX-Part: 1\r\n\r\nbody\r\n--b--\r\n")
    assert table.keys == ["Subject: x"]
    assert not inspector.inspecting  # stopped at the end of the primary header
    assert inspector.finish().edits == ()


def test_mime_header_checks_stop_after_the_last_boundary_closes() -> None:
    table = CountingTable()
    inspector = ContentInspector(ContentChecks(mime_header=(table,)))
    inspector.feed(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Part: 1\r\n\r\n")
    inspector.feed(b"--b--\r\nContent-Type: epilogue, not a header\r\n")
    assert table.keys == ["Content-Type: multipart/mixed; boundary=b", "X-Part: 1"]
    assert not inspector.inspecting


def test_a_line_longer_than_every_bound_is_matched_on_its_start() -> None:
    table = CountingTable()
    checks = ContentChecks(body=(table,), header_size_limit=100, body_checks_size_limit=100)
    inspector = ContentInspector(checks)
    inspector.feed(b"Subject: x\r\n\r\n")
    for _ in range(1000):
        inspector.feed(b"y" * 1000)
    inspector.feed(b"\r\nnext\r\n")
    inspector.finish()
    # The long line is checked on its first 102 bytes; "next" starts past the part's limit.
    assert [len(key) for key in table.keys] == [102]


def test_edits_leave_every_other_byte_alone() -> None:
    content = b"A: 1\r\nB: 2\r\n\r\nx\ny\r\n"
    inspector = ContentInspector(ContentChecks(header=(FakeAnswer("B: 2", "IGNORE"),)))
    inspector.feed(content)
    assert inspector.finish().apply(content) == b"A: 1\r\n\r\nx\ny\r\n"


class FakeAnswer(LookupTable):
    def __init__(self, key: str, answer: str) -> None:
        super().__init__("fake:")
        self.key, self.answer = key, answer

    def lookup(self, key: str) -> str | None:
        return self.answer if key == self.key else None


def test_specs_are_none_when_no_class_has_a_table() -> None:
    assert CheckSpecs.from_settings(settings_from_text("", "main.cf")) is None


def test_specs_default_mime_and_nested_to_header_checks(tmp_path: Path) -> None:
    table = tmp_path / "checks"
    table.write_text("/^Subject: no/ REJECT\n")
    specs = CheckSpecs.from_settings(
        settings_from_text(f"header_checks = regexp:{table}\nheader_size_limit = 500\n", "m")
    )
    assert specs is not None
    assert specs.header == specs.mime_header == specs.nested_header == (f"regexp:{table}",)
    assert specs.body == ()
    assert specs.header_size_limit == 500
    assert specs.open().header == (open_table(f"regexp:{table}"),)


def test_a_table_that_cannot_open_raises_table_unavailable(tmp_path: Path) -> None:
    specs = CheckSpecs.from_settings(
        settings_from_text(f"body_checks = regexp:{tmp_path}/missing\n", "main.cf")
    )
    assert specs is not None
    with pytest.raises(TableUnavailable):
        specs.open()
