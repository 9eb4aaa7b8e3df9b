"""Syntax, semantics and errors of the in-memory and file tables, and the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mta.maps import (
    TableFormatError,
    TableUnavailable,
    UnknownTableType,
    close_tables,
    open_table,
)
from mta.maps.lmdb_table import build_lmdb
from mta.maps.table import MAX_KEY_BYTES, MAX_LINE_BYTES, ResultCache


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- inline: and static: ------------------------------------------------------------------------


def test_inline_takes_plain_and_braced_items_and_folds_keys() -> None:
    table = open_table("inline:{ Key=value, {other = text with spaces} third=3 }", shared=False)
    assert table.lookup("KEY") == "value"
    assert table.lookup("other") == "text with spaces"
    assert table.lookup("third") == "3"
    assert table.lookup("missing") is None


def test_inline_item_without_equals_is_refused_naming_the_table() -> None:
    with pytest.raises(TableFormatError, match=r'inline:\{a=b, c\}: bad syntax.*"name=value"'):
        open_table("inline:{a=b, c}", shared=False)


def test_inline_needs_braces() -> None:
    with pytest.raises(TableFormatError, match="expected inline:"):
        open_table("inline:a=b", shared=False)


def test_unbalanced_inline_braces_are_refused() -> None:
    with pytest.raises(TableFormatError, match="missing '}'"):
        open_table("inline:{ {a=b }", shared=False)


def test_static_answers_every_key_with_its_value() -> None:
    assert open_table("static:OK", shared=False).lookup("anything") == "OK"
    braced = open_table("static:{ text with spaces }", shared=False)
    assert braced.lookup("x") == "text with spaces"


# -- texthash: and the postmap source format ---------------------------------------------------


def test_texthash_missing_file_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(TableUnavailable, match=r"texthash:.*missing.*No such file"):
        open_table(f"texthash:{tmp_path / 'missing'}", shared=False)


def test_source_line_without_value_names_file_and_line(tmp_path: Path) -> None:
    source = write(tmp_path / "t", "a b\n# comment\nlonely\n")
    with pytest.raises(
        TableFormatError, match=rf"{re.escape(str(source))}, line 3: expected format"
    ):
        open_table(f"texthash:{source}", shared=False)


def test_continuation_before_any_entry_is_refused(tmp_path: Path) -> None:
    source = write(tmp_path / "t", "  indented first line\n")
    with pytest.raises(TableFormatError, match="line 1: continuation line with no entry"):
        open_table(f"texthash:{source}", shared=False)


def test_key_longer_than_the_bound_is_refused(tmp_path: Path) -> None:
    source = write(tmp_path / "t", f"{'k' * (MAX_KEY_BYTES + 1)} value\n")
    with pytest.raises(TableFormatError, match=f"line 1: key longer than {MAX_KEY_BYTES}"):
        open_table(f"texthash:{source}", shared=False)


def test_logical_line_longer_than_the_bound_is_refused(tmp_path: Path) -> None:
    source = write(
        tmp_path / "t", "key start\n" + f"  {'v' * 1000}\n" * (MAX_LINE_BYTES // 1000 + 2)
    )
    with pytest.raises(TableFormatError, match=f"line 1: longer than {MAX_LINE_BYTES}"):
        open_table(f"texthash:{source}", shared=False)


def test_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "t"
    source.write_bytes(b"a b\nc \xff\n")
    with pytest.raises(TableFormatError, match="line 2: not UTF-8"):
        open_table(f"texthash:{source}", shared=False)


def test_key_too_long_for_an_indexed_table_is_not_found(tmp_path: Path) -> None:
    source = write(tmp_path / "t", "a b\n")
    table = open_table(f"texthash:{source}", shared=False)
    assert table.lookup("a" * 100_000) is None


# -- lmdb: --------------------------------------------------------------------------------------


def test_build_reports_duplicates_and_keeps_the_first(tmp_path: Path) -> None:
    source = write(tmp_path / "virtual", "a 1\nb 2\nA 3\n")
    result = build_lmdb(source)
    assert result.path == tmp_path / "virtual.lmdb"
    assert result.entries == 2
    assert result.warnings == [f"{source}, line 3: duplicate entry: 'a'"]
    assert open_table(f"lmdb:{source}", shared=False).lookup("a") == "1"


def test_build_leaves_no_temporary_files(tmp_path: Path) -> None:
    build_lmdb(write(tmp_path / "virtual", "a 1\n"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["virtual", "virtual.lmdb"]


def test_failed_build_keeps_the_old_table(tmp_path: Path) -> None:
    source = write(tmp_path / "virtual", "a 1\n")
    build_lmdb(source)
    write(source, "a 2\nbroken\n")
    with pytest.raises(TableFormatError, match="line 2"):
        build_lmdb(source)
    assert open_table(f"lmdb:{source}", shared=False).lookup("a") == "1"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["virtual", "virtual.lmdb"]


def test_rebuild_is_atomic_while_a_reader_holds_the_old_table(tmp_path: Path) -> None:
    source = write(tmp_path / "virtual", "".join(f"key{n} old{n}\n" for n in range(1000)))
    build_lmdb(source)
    reader = open_table(f"lmdb:{source}", shared=False)
    assert reader.lookup("key7") == "old7"
    write(source, "".join(f"key{n} new{n}\n" for n in range(2000)))
    build_lmdb(source)
    # Until its next check the reader answers from the old file, whole and unchanged.
    assert [reader.lookup(f"key{n}") for n in (0, 999, 1000)] == ["old0", "old999", None]
    fresh = open_table(f"lmdb:{source}", shared=False)
    assert fresh.lookup("key1500") == "new1500"


def test_reader_reopens_a_rebuilt_table(tmp_path: Path) -> None:
    from mta.maps.lmdb_table import LmdbTable

    source = write(tmp_path / "virtual", "a old\n")
    build_lmdb(source)
    reader = LmdbTable(f"lmdb:{source}", str(source), reopen_check_seconds=0)
    assert reader.lookup("a") == "old"
    write(source, "a new\n")
    build_lmdb(source)
    assert reader.lookup("a") == "new"
    reader.close()


def test_lmdb_table_without_a_built_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TableUnavailable, match=r"table lmdb:.* is unavailable: .*No such file"):
        open_table(f"lmdb:{tmp_path / 'never-built'}", shared=False)


# -- the registry ------------------------------------------------------------------------------


def test_unknown_type_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownTableType, match=r"unsupported table type 'hash'.*lmdb"):
        open_table("hash:/etc/aliases")


def test_spec_without_a_type_is_refused() -> None:
    with pytest.raises(TableFormatError, match="expected a table as type:name"):
        open_table("/etc/aliases")


def test_shared_tables_are_opened_once_per_process(tmp_path: Path) -> None:
    source = write(tmp_path / "t", "a 1\n")
    first = open_table(f"texthash:{source}")
    write(source, "a 2\n")
    assert open_table(f"texthash:{source}") is first
    assert first.lookup("a") == "1"
    close_tables()
    assert open_table(f"texthash:{source}").lookup("a") == "2"
    close_tables()


def test_failed_open_is_not_remembered(tmp_path: Path) -> None:
    source = tmp_path / "t"
    with pytest.raises(TableUnavailable):
        open_table(f"texthash:{source}")
    write(source, "a 1\n")
    assert open_table(f"texthash:{source}").lookup("a") == "1"
    close_tables()


def test_result_cache_is_bounded_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("mta.maps.table.time.monotonic", lambda: now[0])
    cache = ResultCache(seconds=5, entries=2)
    cache.put("a", "1")
    cache.put("b", None)
    cache.put("c", "3")
    assert cache.get("a") == (False, None)  # evicted: the oldest of three in a cache of two
    assert cache.get("b") == (True, None)  # a not-found answer is cached too
    now[0] += 5
    assert cache.get("c") == (False, None)


def test_two_tables_on_one_lmdb_file_share_its_environment(tmp_path: Path) -> None:
    source = write(tmp_path / "virtual", "a 1\n")
    build_lmdb(source)
    first = open_table(f"lmdb:{source}", shared=False)
    second = open_table(f"lmdb:{source}", shared=False)  # LMDB alone would refuse this
    first.close()
    assert second.lookup("a") == "1"
    second.close()
