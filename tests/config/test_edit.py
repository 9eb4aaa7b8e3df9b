"""Editing main.cf in place (postconf -e / -X): the rest of the file stays byte for byte."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mta.config.edit import edit_main_cf, replace_main_cf
from mta.config.errors import ConfigError
from mta.config.maincf import parse_main_cf

MAIN_CF = (
    "# Site configuration\n"
    "\n"
    "myhostname = mx.example.org   # not a comment: part of the value\n"
    "mydestination = $myhostname,\n"
    "    localhost.$mydomain\n"
    "# a comment inside the continued setting stays\n"
    "\tlocalhost\n"
    "relay_domains = example.net\r\n"
    "smtpd_timeout = 300s\n"
    "smtpd_timeout = 600s\n"
    "   # indented comment\n"
    "message_size_limit = 20480000"
)


def test_replacing_a_continued_setting_keeps_every_other_byte() -> None:
    edited = edit_main_cf(MAIN_CF, {"mydestination": "a.example, b.example"}, "main.cf")
    assert edited == MAIN_CF.replace(
        "mydestination = $myhostname,\n    localhost.$mydomain\n",
        "mydestination = a.example, b.example\n",
    ).replace("\tlocalhost\n", "")


def test_replacing_keeps_the_lines_ending() -> None:
    edited = edit_main_cf(MAIN_CF, {"relay_domains": "example.com"}, "main.cf")
    assert edited == MAIN_CF.replace(
        "relay_domains = example.net\r\n", "relay_domains = example.com\r\n"
    )


def test_a_repeated_parameter_is_set_once_where_it_first_was() -> None:
    edited = edit_main_cf(MAIN_CF, {"smtpd_timeout": "60s"}, "main.cf")
    assert edited == MAIN_CF.replace(
        "smtpd_timeout = 300s\nsmtpd_timeout = 600s\n", "smtpd_timeout = 60s\n"
    )


def test_a_new_parameter_is_appended_after_a_last_line_without_newline() -> None:
    edited = edit_main_cf(MAIN_CF, {"relayhost": "[mx.example]:587"}, "main.cf")
    assert edited == MAIN_CF + "\nrelayhost = [mx.example]:587\n"


def test_an_empty_value_is_written_as_postconf_writes_it() -> None:
    assert edit_main_cf("", {"relayhost": ""}, "main.cf") == "relayhost =\n"


def test_removing_drops_every_setting_and_its_continuation_lines() -> None:
    edited = edit_main_cf(
        MAIN_CF, {"mydestination": None, "smtpd_timeout": None, "absent": None}, "main.cf"
    )
    assert edited == (
        "# Site configuration\n"
        "\n"
        "myhostname = mx.example.org   # not a comment: part of the value\n"
        "# a comment inside the continued setting stays\n"
        "relay_domains = example.net\r\n"
        "   # indented comment\n"
        "message_size_limit = 20480000"
    )


def test_edit_round_trips_through_the_parser() -> None:
    edited = edit_main_cf(
        MAIN_CF, {"mydestination": "a.example", "relayhost": "x", "relay_domains": None}, "main.cf"
    )
    assert parse_main_cf(edited, "main.cf") == {
        "myhostname": "mx.example.org   # not a comment: part of the value",
        "mydestination": "a.example",
        "smtpd_timeout": "600s",
        "message_size_limit": "20480000",
        "relayhost": "x",
    }
    assert edit_main_cf(edited, {}, "main.cf") == edited


def test_a_value_of_several_lines_is_refused() -> None:
    with pytest.raises(ConfigError, match="one line"):
        edit_main_cf(MAIN_CF, {"smtpd_banner": "hello\nMAIL FROM:<x>"}, "main.cf")


def test_a_broken_main_cf_is_not_edited() -> None:
    with pytest.raises(ConfigError, match=r"^main.cf, line 2: expected 'name = value'"):
        edit_main_cf("a = 1\nnot a setting\n", {"a": "2"}, "main.cf")


def test_replace_keeps_the_file_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("a = 1\n")
    main_cf.chmod(0o640)
    replace_main_cf(main_cf, "a = 2\n")
    assert main_cf.read_text() == "a = 2\n"
    assert stat.S_IMODE(main_cf.stat().st_mode) == 0o640
    assert [path.name for path in tmp_path.iterdir()] == ["main.cf"]
