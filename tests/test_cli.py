"""The `mta` entry point: version, help, the global -c option."""

from __future__ import annotations

from click.testing import CliRunner

from mta import __version__
from mta.cli.main import cli


def test_version_names_the_release() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"mta {__version__} (")


def test_help_lists_the_global_config_option() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "-c, --config-dir" in result.output
