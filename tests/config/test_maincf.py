"""main.cf syntax as postconf(5) describes it, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.config.maincf import ConfigError, expand, load_settings, parse_main_cf


def test_continuation_lines_join_with_one_space() -> None:
    text = "mydestination = a.example,\n    b.example\n\tc.example\n"
    assert parse_main_cf(text, "main.cf") == {"mydestination": "a.example, b.example c.example"}


def test_comments_and_blank_lines_are_ignored() -> None:
    text = "# a comment\n\nmyhostname = mx.example\n   # indented comment\n"
    assert parse_main_cf(text, "main.cf") == {"myhostname": "mx.example"}


def test_later_setting_wins() -> None:
    assert parse_main_cf("a = 1\na = 2\n", "main.cf") == {"a": "2"}


def test_dollar_references_expand_in_every_spelling() -> None:
    parameters = {
        "mydomain": "example.com",
        "myhostname": "mx.$mydomain",
        "x": "${myhostname} $(mydomain)",
    }
    assert expand("x", parameters) == "mx.example.com example.com"


def test_unknown_reference_expands_to_empty() -> None:
    assert expand("x", {"x": "a$nothing"}) == "a"


def test_expansion_loop_is_an_error_not_a_hang() -> None:
    with pytest.raises(ConfigError, match="parameter a"):
        expand("a", {"a": "$b", "b": "$a"})


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^main.cf, line 3: expected 'name = value'"):
        parse_main_cf("a = 1\n\nnot a setting\n", "main.cf")


def test_continuation_without_parameter_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^main.cf, line 1: continuation line"):
        parse_main_cf("  stray\n", "main.cf")


def test_missing_main_cf_means_builtin_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(tmp_path / "absent")
    assert settings.queue_directory == tmp_path / "mta-data" / "queue"


def test_queue_directory_from_main_cf(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/q\n")
    assert load_settings(tmp_path).queue_directory == tmp_path / "q"
