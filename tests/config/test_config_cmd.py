"""`mta config` behaves like postconf: listings, -e/-X edits, -M, --json, warnings, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from mta.cli.main import cli
from mta.config.maincf import BUILTIN_DEFAULTS
from mta.config.table import reference_markdown
from mta.util import sysexits

DOCS = Path(__file__).parents[2] / "docs" / "parameters.md"

MAIN_CF = """\
# site settings
myhostname = mx.example.org
mydomain = $site
site = example.org
mydestination = $myhostname,
    localhost
smtp_destination_concurrency_limit = 4
"""

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:2525 inet n   -       n       -       -       smtpd -o smtpd_timeout=30s
qmgr      unix  n       -       n       300     1       qmgr
discard   unix  -       -       n       -       -       discard
"""


def run(config_dir: Path, *arguments: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config_dir), "config", *arguments])


def configured(tmp_path: Path, text: str = MAIN_CF) -> Path:
    (tmp_path / "main.cf").write_text(text)
    return tmp_path


def listing(result: Result) -> dict[str, str]:
    return dict(line.split(" =", 1) for line in result.stdout.splitlines())


def test_without_options_every_parameter_in_effect_sorted(tmp_path: Path) -> None:
    result = run(configured(tmp_path))
    assert result.exit_code == 0, result.output
    names = [line.split(" =")[0] for line in result.stdout.splitlines()]
    assert names == sorted(names)
    assert set(names) == set(BUILTIN_DEFAULTS) | {"site", "smtp_destination_concurrency_limit"}
    assert "mydestination = $myhostname, localhost\n" in result.stdout
    assert "relayhost =\n" in result.stdout  # an empty value, as postconf prints it


def test_n_only_what_main_cf_sets(tmp_path: Path) -> None:
    result = run(configured(tmp_path), "-n")
    assert result.stdout == (
        "mydestination = $myhostname, localhost\n"
        "mydomain = $site\n"
        "myhostname = mx.example.org\n"
        "site = example.org\n"
        "smtp_destination_concurrency_limit = 4\n"
    )


def test_d_the_defaults_whatever_main_cf_says(tmp_path: Path) -> None:
    result = run(configured(tmp_path), "-d", "mydestination", "smtpd_timeout", "mydomain")
    assert result.stdout == (
        "mydestination = $myhostname, localhost.$mydomain, localhost\n"
        "smtpd_timeout = 300s\n"
        f"mydomain = {BUILTIN_DEFAULTS['mydomain']}\n"
    )
    assert listing(run(tmp_path, "--defaults")) == {
        name: f" {value}" if value else "" for name, value in BUILTIN_DEFAULTS.items()
    }


def test_x_expands_dollar_names(tmp_path: Path) -> None:
    result = run(configured(tmp_path), "-x", "mydestination", "mydomain")
    assert result.stdout == "mydestination = mx.example.org, localhost\nmydomain = example.org\n"


def test_h_prints_values_only(tmp_path: Path) -> None:
    assert run(configured(tmp_path), "-h", "site").stdout == "example.org\n"


def test_per_transport_parameter_shows_its_fallback(tmp_path: Path) -> None:
    result = run(configured(tmp_path), "lmtp_destination_concurrency_limit")
    assert result.stdout == (
        "lmtp_destination_concurrency_limit = $default_destination_concurrency_limit\n"
    )


def test_unknown_name_is_a_warning_as_in_postconf(tmp_path: Path) -> None:
    result = run(configured(tmp_path), "smtpd_timeout", "no_such_parameter")
    assert result.exit_code == 0
    assert result.stdout == "smtpd_timeout = 300s\n"
    assert result.stderr == "mta: warning: no_such_parameter: unknown parameter\n"


def test_unknown_parameter_in_main_cf_gets_did_you_mean(tmp_path: Path) -> None:
    result = run(configured(tmp_path, "smtpd_timout = 5s\nmessage_size_limt = 1\n"), "-n")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"mta: warning: {tmp_path}/main.cf, line 1: unknown parameter smtpd_timout"
        " (did you mean smtpd_timeout?)",
        f"mta: warning: {tmp_path}/main.cf, line 2: unknown parameter message_size_limt"
        " (did you mean message_size_limit?)",
    ]
    assert "smtpd_timout = 5s\n" in result.stdout  # -n shows what main.cf says, used or not
    assert "smtpd_timout" not in run(tmp_path).stdout  # the full listing: known ones only


def test_bad_value_is_an_error_naming_file_line_and_parameter(tmp_path: Path) -> None:
    result = run(configured(tmp_path, "# x\n\nsmtpd_timeout = 5x\n"))
    assert result.exit_code == sysexits.EX_CONFIG
    assert result.stderr == (
        f"mta: error: {tmp_path}/main.cf, line 3: smtpd_timeout = 5x: bad time value\n"
    )
    assert "smtpd_timeout = 5x\n" in result.stdout  # the listing is still there to read


def test_x_on_a_dollar_name_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    result = run(configured(tmp_path, "a = $b\nb = $a\nmyorigin = $a\n"), "-x", "a")
    assert result.exit_code == sysexits.EX_CONFIG
    assert f"{tmp_path}/main.cf, line 1: parameter a: $name expansion nested" in result.stderr


def test_json_lines_parse_back_with_origins(tmp_path: Path) -> None:
    result = run(configured(tmp_path), "--json")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {record["name"]: record for record in records}
    assert by_name["site"] == {
        "name": "site",
        "value": "example.org",
        "origin": f"{tmp_path}/main.cf, line 4",
    }
    assert by_name["smtpd_timeout"] == {"name": "smtpd_timeout", "value": "300s", "origin": None}
    assert [record["name"] for record in records] == sorted(by_name)


def test_e_sets_in_place_and_x_removes(tmp_path: Path) -> None:
    configured(tmp_path)
    result = run(tmp_path, "-e", "mydestination=$myhostname, localhost", "relayhost = [mx]:587")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "main.cf").read_text() == MAIN_CF.replace(
        "mydestination = $myhostname,\n    localhost\n", "mydestination = $myhostname, localhost\n"
    ) + ("relayhost = [mx]:587\n")
    result = run(tmp_path, "-X", "relayhost", "site", "mydomain")
    assert result.exit_code == 0, result.output
    assert run(tmp_path, "-n").stdout == (
        "mydestination = $myhostname, localhost\n"
        "myhostname = mx.example.org\n"
        "smtp_destination_concurrency_limit = 4\n"
    )
    assert (tmp_path / "main.cf").read_text().startswith("# site settings\n")


def test_e_creates_main_cf_when_there_is_none(tmp_path: Path) -> None:
    assert run(tmp_path, "-e", "relayhost=[mx.example]").exit_code == 0
    assert (tmp_path / "main.cf").read_text() == "relayhost = [mx.example]\n"


def test_e_refuses_a_bad_value_and_leaves_main_cf_alone(tmp_path: Path) -> None:
    configured(tmp_path)
    for setting, message in [
        ("smtpd_timeout=5x", "smtpd_timeout = 5x: bad time value"),
        ("virtual_alias_maps=/etc/virtual", "expected type:name lookup tables"),
        ("myorigin=$nothing", "myorigin = : bad host name"),  # checked after expansion
    ]:
        result = run(tmp_path, "-e", "relayhost=x", setting)
        assert result.exit_code == sysexits.EX_DATAERR, setting
        assert result.stderr.startswith(f"mta: error: {tmp_path}/main.cf not changed: ")
        assert message in result.stderr
        assert (tmp_path / "main.cf").read_text() == MAIN_CF


def test_e_warns_about_an_unknown_name_but_sets_it(tmp_path: Path) -> None:
    result = run(tmp_path, "-e", "smtpd_timout=5s")
    assert result.exit_code == 0
    assert "did you mean smtpd_timeout?" in result.stderr
    assert (tmp_path / "main.cf").read_text() == "smtpd_timout = 5s\n"


def test_usage_errors(tmp_path: Path) -> None:
    assert run(tmp_path, "-e", "relayhost").exit_code == sysexits.EX_USAGE
    assert run(tmp_path, "-e").exit_code == sysexits.EX_USAGE
    assert run(tmp_path, "-X", "a=b").exit_code == sysexits.EX_USAGE
    assert run(tmp_path, "-n", "-M").exit_code == sysexits.EX_USAGE
    assert not (tmp_path / "main.cf").exists()


def test_unreadable_main_cf_is_ex_config(tmp_path: Path) -> None:
    result = run(configured(tmp_path, "not a setting\n"), "-n")
    assert result.exit_code == sysexits.EX_CONFIG
    assert f"{tmp_path}/main.cf, line 1: expected 'name = value'" in result.stderr


def test_m_lists_services_in_postconf_layout(tmp_path: Path) -> None:
    (tmp_path / "master.cf").write_text(MASTER_CF)
    result = run(tmp_path, "-M")
    assert result.stdout.splitlines() == [
        "127.0.0.1:2525 inet  n       y       n       -       -       smtpd -o smtpd_timeout=30s",
        "qmgr      unix  n       y       n       300     1       qmgr",
        "discard   unix  y       y       n       -       -       discard",
    ]
    assert run(tmp_path, "-M", "qmgr/unix", "nothing").stdout.startswith("qmgr ")
    assert run(tmp_path, "-M", "nothing").stderr == "mta: warning: nothing: unknown service\n"


def test_m_json_parses_back(tmp_path: Path) -> None:
    (tmp_path / "master.cf").write_text(MASTER_CF)
    records = [json.loads(line) for line in run(tmp_path, "-M", "--json").stdout.splitlines()]
    assert [(record["service"], record["type"]) for record in records] == [
        ("127.0.0.1:2525", "inet"),
        ("qmgr", "unix"),
        ("discard", "unix"),
    ]
    assert records[0]["overrides"] == {"smtpd_timeout": "30s"}
    assert records[1]["maxproc"] == 1 and records[1]["wakeup"] == 300
    assert records[2]["maxproc"] is None


def test_m_without_master_cf_shows_the_builtin_services(tmp_path: Path) -> None:
    assert "qmgr      unix" in run(tmp_path, "-M").stdout


def test_docs_parameters_md_is_up_to_date(tmp_path: Path) -> None:
    assert run(tmp_path, "--doc").stdout == reference_markdown()
    assert DOCS.read_text() == reference_markdown(), (
        "regenerate: python -m mta config --doc > docs/parameters.md"
    )
