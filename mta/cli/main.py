"""The root `mta` group: global options and the registry of subcommand groups."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mta import __version__
from mta.cli.context import DEFAULT_CONFIG_DIR, AppContext


def _version_line() -> str:
    from hotpath import parser, queue

    modules = {"_parser": parser.ACCELERATED, "_queue": queue.ACCELERATED}
    if all(modules.values()):
        flavour = "compiled hotpath"
    elif not any(modules.values()):
        flavour = "pure-Python hotpath"
    else:
        pure = ", ".join(name for name, compiled in modules.items() if not compiled)
        flavour = f"compiled hotpath except {pure}"
    return f"mta {__version__} ({flavour})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_line())
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and whether the compiled hotpath is in use.",
)
@click.option(
    "-c",
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: Path(os.environ.get("MTA_CONFIG_DIR", str(DEFAULT_CONFIG_DIR))),
    show_default="$MTA_CONFIG_DIR or ./mta-conf",
    help="Directory of main.cf and master.cf (like postconf -c).",
)
@click.pass_context
def cli(ctx: click.Context, config_dir: Path) -> None:
    """mta: a Postfix-class mail transfer agent."""
    ctx.obj = AppContext(config_dir=config_dir)


from mta.cli.config_cmd import config_command  # noqa: E402
from mta.cli.lifecycle import LIFECYCLE_COMMANDS  # noqa: E402
from mta.cli.map_cmd import map_group  # noqa: E402
from mta.cli.queue_cmd import queue_group  # noqa: E402

cli.add_command(config_command)
cli.add_command(queue_group)
cli.add_command(map_group)
for command in LIFECYCLE_COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="mta")
