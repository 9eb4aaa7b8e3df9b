"""What every `mta` subcommand shares: the configuration directory and how to fail.

`-c CONFDIR` (or MTA_CONFIG_DIR) names the directory of main.cf and master.cf, as with
`postconf -c`. Errors are one line on stderr and a sysexits code, never a traceback.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

DEFAULT_CONFIG_DIR = Path("mta-conf")


@dataclass(frozen=True)
class AppContext:
    """The state the root group hands to every subcommand."""

    config_dir: Path

    @property
    def queue_directory(self) -> Path:
        """The queue's LMDB directory, from main.cf's queue_directory when it is set."""
        from mta.config.maincf import load_settings

        return load_settings(self.config_dir).queue_directory


def app_context(ctx: click.Context) -> AppContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppContext)
    return obj


def fail(message: str, code: int) -> NoReturn:
    """Print one line on stderr, as `mta: error: ...`, and exit with a sysexits code."""
    click.echo(f"mta: error: {message}", err=True)
    sys.exit(code)


def emit_json_line(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, separators=(",", ":"), sort_keys=False))
