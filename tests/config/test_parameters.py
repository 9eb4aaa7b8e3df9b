"""main.cf values as Postfix reads them; bad values name the file, line and parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.config.maincf import ConfigError, load_settings
from mta.config.parameters import validate
from mta.config.values import duration, interface_addresses, parse_bool, parse_size, parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600), ("2d", 172800), ("1w", 604800)],
)
def test_time_units_as_postfix(text: str, seconds: int) -> None:
    assert parse_time(text, "smtpd_timeout") == seconds


def test_bare_number_uses_the_parameters_default_unit() -> None:
    assert parse_time("5", "maximal_queue_lifetime", default_unit="d") == 5 * 86400


@pytest.mark.parametrize("text", ["5x", "", "m", "1.5h", "-1s", "1h30m", " 5 s", "\u0661\u0662s"])
def test_bad_time_values(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^smtpd_timeout = .*: bad time value$"):
        parse_time(text, "smtpd_timeout")


def test_numbers_and_booleans() -> None:
    assert parse_size("10240000", "message_size_limit") == 10240000
    assert parse_bool("YES", "x") is True
    assert parse_bool("no", "x") is False
    for bad in ("10k", "-1", "", "١٢"):
        with pytest.raises(ConfigError, match="bad numerical value"):
            parse_size(bad, "message_size_limit")
    with pytest.raises(ConfigError, match="bad boolean value"):
        parse_bool("true", "x")
    with pytest.raises(ConfigError, match="out of range"):
        parse_size("0", "default_process_limit", minimum=1)
    with pytest.raises(ConfigError, match="out of range"):
        parse_size("9" * 30, "message_size_limit")
    assert parse_size("0" * 5000 + "7", "message_size_limit") == 7


@pytest.mark.parametrize("text", ["9" * 5000, "9" * 5000 + "s", "1" + "0" * 16 + "w"])
def test_numbers_too_long_for_int_are_out_of_range(text: str) -> None:
    # int() itself refuses over 4300 digits with a ValueError; that must stay a ConfigError
    with pytest.raises(ConfigError, match="out of range"):
        parse_time(text, "smtpd_timeout")
    if text.isdigit():
        with pytest.raises(ConfigError, match="out of range"):
            parse_size(text, "message_size_limit")


def write_main_cf(directory: Path, text: str) -> None:
    (directory / "main.cf").write_text(text)


# (main.cf line 3, message after "main.cf, line 3: ")
BAD_VALUES = [
    ("smtpd_timeout = 5x", "smtpd_timeout = 5x: bad time value"),
    ("minimal_backoff_time = 0", "minimal_backoff_time = 0: time value out of range"),
    ("queue_run_delay = soon", "queue_run_delay = soon: bad time value"),
    ("maximal_queue_lifetime = 5 days", "maximal_queue_lifetime = 5 days: bad time value"),
    ("message_size_limit = 10M", "message_size_limit = 10M: bad numerical value"),
    ("smtpd_recipient_limit = many", "smtpd_recipient_limit = many: bad numerical value"),
    ("smtpd_hard_error_limit = 0", "smtpd_hard_error_limit = 0: numerical value out of range"),
    ("default_process_limit = x", "default_process_limit = x: bad numerical value"),
    ("myhostname = bad_host name", "myhostname = bad_host name: bad host name"),
    ("mydomain = -x.example", "mydomain = -x.example: bad host name"),
    ("myorigin = a..b", "myorigin = a..b: bad host name"),
    ("mynetworks = 127.0.0.0/8 300.1.2.3/8", "mynetworks = .*: bad network pattern '300.1.2.3/8'"),
    ("mynetworks = [::1]/129", "bad network pattern"),
    ("inet_interfaces = 127.0.0.1 localhost", "'localhost' is not an IP address"),
    ("default_transport = :x", "expected transport or transport:nexthop"),
    ("relay_transport = ", "expected transport or transport:nexthop"),
    ("local_transport = a b", "expected transport or transport:nexthop"),
    ("queue_directory =", "queue_directory = : expected a directory name"),
    ("disable_vrfy_command = maybe", "bad boolean value"),
    ("queue_sync = sometimes", "queue_sync = sometimes: expected one of full, unsafe"),
    ("queue_max_size = 1k", "queue_max_size = 1k: bad numerical value"),
]


@pytest.mark.parametrize(("line", "message"), BAD_VALUES, ids=[line for line, _ in BAD_VALUES])
def test_bad_value_names_file_line_and_parameter(tmp_path: Path, line: str, message: str) -> None:
    write_main_cf(tmp_path, f"# mine\nmyhostname = mx.example\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        validate(load_settings(tmp_path))
    assert str(caught.value).startswith(f"{tmp_path}/main.cf, line 3: ")
    assert caught.match(message)


def test_the_issue_parameters_accept_postfix_values(tmp_path: Path) -> None:
    write_main_cf(
        tmp_path,
        """\
myhostname = mx.example.org
mydomain = example.org
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost
mynetworks = 127.0.0.0/8, [::1]/128 !192.0.2.1 10.0.0.0/8 hash:/etc/mta/net /etc/mta/nets
relay_domains = example.net
inet_interfaces = 127.0.0.1, [::1]
queue_directory = /tmp/q
data_directory = /tmp/d
default_transport = discard
local_transport = local:$myhostname
relay_transport = relay
maillog_file = /tmp/maillog
message_size_limit = 0
smtpd_recipient_limit = 1000
smtpd_timeout = 5m
smtpd_hard_error_limit = 20
smtpd_banner = $myhostname ESMTP hello
default_process_limit = 100
minimal_backoff_time = 300s
maximal_backoff_time = 4000s
maximal_queue_lifetime = 5d
queue_run_delay = 300s
""",
    )
    assert validate(load_settings(tmp_path)) == []


def test_unknown_parameter_is_a_warning_naming_file_and_line(tmp_path: Path) -> None:
    write_main_cf(tmp_path, "myhostname = mx.example\nsmtpd_timout = 5s\n")
    assert validate(load_settings(tmp_path)) == [
        f"{tmp_path}/main.cf, line 2: unknown parameter smtpd_timout (did you mean smtpd_timeout?)"
    ]


def test_parameter_referenced_as_dollar_name_is_not_unknown(tmp_path: Path) -> None:
    write_main_cf(tmp_path, "site = example.org\nmydomain = $site\n")
    assert validate(load_settings(tmp_path)) == []


def test_defaults_are_valid(tmp_path: Path) -> None:
    assert validate(load_settings(tmp_path)) == []


def test_later_setting_is_the_one_located(tmp_path: Path) -> None:
    write_main_cf(tmp_path, "smtpd_timeout = 5x\nsmtpd_timeout = 10s\nsmtpd_timeout = 7y\n")
    with pytest.raises(ConfigError, match=r"main\.cf, line 3: smtpd_timeout = 7y"):
        validate(load_settings(tmp_path))


def test_service_readers_name_file_and_line(tmp_path: Path) -> None:
    write_main_cf(tmp_path, "\nsmtpd_timeout = 5x\n")
    with pytest.raises(ConfigError, match=r"main\.cf, line 2: smtpd_timeout = 5x: bad time value"):
        duration(load_settings(tmp_path), "smtpd_timeout")


def test_interface_addresses() -> None:
    assert interface_addresses("all") == ["0.0.0.0", "::"]
    assert interface_addresses("loopback-only") == ["127.0.0.1"]
    assert interface_addresses("127.0.0.1, [::1]") == ["127.0.0.1", "::1"]
