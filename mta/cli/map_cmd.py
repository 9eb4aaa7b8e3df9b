"""`mta map`: build and query lookup tables (postmap).

  build [--type lmdb] FILE     postmap FILE: FILE.lmdb from `key value` lines, replaced
                               atomically (a running MTA keeps reading the old one until it
                               notices the new file)
  query [--json] TYPE:NAME KEY...
                               postmap -q KEY TYPE:NAME: prints the value of one key, or
                               `key<TAB>value` for each of several keys found (postmap -q -)

Exit codes: 0 when a key was found (or a build succeeded), 1 when no key was found, as
postmap; otherwise sysexits: EX_USAGE for an unknown table type, EX_NOINPUT when the source or
table file is missing, EX_DATAERR for a malformed file (the message names file and line),
EX_CANTCREAT when the built file cannot be written, EX_TEMPFAIL when a table cannot answer.
Warnings (duplicate keys, kept as the first, like postmap) go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mta.cli.context import emit_json_line, fail
from mta.maps import TableFormatError, TableUnavailable, UnknownTableType, open_table
from mta.maps.lmdb_table import build_lmdb
from mta.util import sysexits

NOT_FOUND_EXIT = 1  # postmap -q exits 1 when the key is not found


@click.group("map")
def map_group() -> None:
    """Build and query lookup tables (postmap)."""


@map_group.command("build")
@click.option(
    "--type",
    "table_type",
    type=click.Choice(["lmdb"]),
    default="lmdb",
    show_default=True,
    help="Type of the table to build.",
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
def build_command(table_type: str, source: Path) -> None:
    """Build SOURCE.lmdb from SOURCE (one `key value` per line), like postmap."""
    if not source.exists():
        fail(f"{source}: no such file", sysexits.EX_NOINPUT)
    try:
        result = build_lmdb(source)
    except TableFormatError as error:
        fail(str(error), sysexits.EX_DATAERR)
    except TableUnavailable as error:
        fail(str(error), sysexits.EX_NOINPUT)
    except OSError as error:
        fail(
            f"cannot write {source}.{table_type}: {error.strerror or error}", sysexits.EX_CANTCREAT
        )
    for warning in result.warnings:
        click.echo(f"mta: warning: {warning}", err=True)


@map_group.command("query")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: table, key, value, found.")
@click.argument("spec", metavar="TYPE:NAME")
@click.argument("keys", metavar="KEY...", nargs=-1, required=True)
def query_command(as_json: bool, spec: str, keys: tuple[str, ...]) -> None:
    """Print the value of each KEY in table TYPE:NAME, like postmap -q."""
    try:
        table = open_table(spec, shared=False)
    except UnknownTableType as error:
        fail(str(error), sysexits.EX_USAGE)
    except TableFormatError as error:
        fail(str(error), sysexits.EX_DATAERR)
    except TableUnavailable as error:
        missing = isinstance(error.__cause__, FileNotFoundError)
        fail(str(error), sysexits.EX_NOINPUT if missing else sysexits.EX_TEMPFAIL)
    found = False
    try:
        for key in keys:
            value = table.lookup(key)
            found = found or value is not None
            if as_json:
                emit_json_line(
                    {"table": spec, "key": key, "value": value, "found": value is not None}
                )
            elif value is not None:
                click.echo(value if len(keys) == 1 else f"{key}\t{value}")
    except TableUnavailable as error:
        fail(str(error), sysexits.EX_TEMPFAIL)
    finally:
        table.close()
    if not found:
        sys.exit(NOT_FOUND_EXIT)
