"""`mta map build|query` (postmap): through click's CliRunner, and once as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from support.instance import environment

from mta.cli.main import cli
from mta.util import sysexits


def run(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(arguments))
    return result.exit_code, result.stdout, result.stderr


def test_build_then_query_prints_the_value(tmp_path: Path) -> None:
    source = tmp_path / "virtual"
    source.write_text("Info@Example.com  sales@example.net\n")
    assert run("map", "build", str(source)) == (0, "", "")
    assert run("map", "query", f"lmdb:{source}", "INFO@example.com") == (
        0,
        "sales@example.net\n",
        "",
    )


def test_query_of_a_missing_key_exits_1_like_postmap() -> None:
    assert run("map", "query", "inline:{a=b}", "c") == (1, "", "")


def test_query_of_several_keys_prints_key_tab_value_for_those_found() -> None:
    code, out, _ = run("map", "query", "inline:{a=1, b=2}", "a", "x", "b")
    assert (code, out) == (0, "a\t1\nb\t2\n")


def test_query_json_lines_have_table_key_value_found() -> None:
    code, out, _ = run("map", "query", "--json", "inline:{a=1}", "a", "x")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"table": "inline:{a=1}", "key": "a", "value": "1", "found": True},
        {"table": "inline:{a=1}", "key": "x", "value": None, "found": False},
    ]


def test_build_warns_about_duplicates_on_stderr(tmp_path: Path) -> None:
    source = tmp_path / "t"
    source.write_text("a 1\na 2\n")
    code, _, err = run("map", "build", str(source))
    assert code == 0
    assert err == f"mta: warning: {source}, line 2: duplicate entry: 'a'\n"


def test_build_of_a_malformed_source_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "t"
    source.write_text("a 1\nlonely\n")
    code, _, err = run("map", "build", str(source))
    assert code == sysexits.EX_DATAERR
    assert err == f"mta: error: {source}, line 2: expected format: key whitespace value\n"


def test_build_of_a_missing_source_is_ex_noinput(tmp_path: Path) -> None:
    code, _, err = run("map", "build", str(tmp_path / "missing"))
    assert code == sysexits.EX_NOINPUT
    assert err.startswith("mta: error: ") and err.count("\n") == 1


def test_query_errors_use_sysexits(tmp_path: Path) -> None:
    assert run("map", "query", "hash:/etc/aliases", "x")[0] == sysexits.EX_USAGE
    assert run("map", "query", f"lmdb:{tmp_path / 'none'}", "x")[0] == sysexits.EX_NOINPUT
    malformed = tmp_path / "bad.cidr"
    malformed.write_text("10.0.0.1/8 x\n")
    code, _, err = run("map", "query", f"cidr:{malformed}", "10.0.0.1")
    assert code == sysexits.EX_DATAERR
    assert f"{malformed}, line 1: non-null host address bits" in err


def test_query_of_an_unreachable_server_is_ex_tempfail(tmp_path: Path) -> None:
    config = tmp_path / "redis.cf"
    config.write_text("host = 127.0.0.1\nport = 1\ntimeout = 1s\n")
    code, _, err = run("map", "query", f"redis:{config}", "x")
    assert code == sysexits.EX_TEMPFAIL
    assert err.startswith(f"mta: error: table redis:{config} is unavailable: 127.0.0.1:1: ")


def test_build_and_query_as_a_real_process(tmp_path: Path) -> None:
    source = tmp_path / "access"
    source.write_text("# comment\n192.0.2.1 REJECT\n")
    command = [sys.executable, "-m", "mta", "map"]
    build = subprocess.run([*command, "build", str(source)], env=environment(), check=False)
    assert build.returncode == 0
    query = subprocess.run(
        [*command, "query", f"lmdb:{source}", "192.0.2.1"],
        env=environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (query.returncode, query.stdout, query.stderr) == (0, "REJECT\n", "")
