"""Reading table source files as Postfix does: bounded, UTF-8, logical lines, `key value`.

A logical line starts with non-white-space text; a line that starts with white space continues
it (joined with one space, as main.cf lines are); blank lines and lines whose first non-blank
character is `#` are comments. Errors name the file and the line: `/etc/mta/access, line 7:
...`. The same reading serves `mta map build` (postmap), texthash:, cidr: and regexp: tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mta.maps.table import (
    MAX_ENTRIES,
    MAX_KEY_BYTES,
    MAX_LINE_BYTES,
    MAX_TABLE_FILE_BYTES,
    MAX_VALUE_BYTES,
    TableFormatError,
    TableUnavailable,
    fold_key,
)
from mta.util import lines


def read_table_file(path: Path, spec: str, limit: int = MAX_TABLE_FILE_BYTES) -> str:
    """The text of a table file; TableUnavailable when it cannot be read, or is too large."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as error:
        raise TableUnavailable(
            f"table {spec} is unavailable: {path}: {error.strerror or error}"
        ) from error
    if len(raw) > limit:
        raise TableFormatError(f"table {spec}: {path}: larger than {limit} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise TableFormatError(f"{path}, line {line}: not UTF-8") from error


def logical_lines(text: str, origin: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each logical line, continuation lines joined."""
    try:
        for numbers, line in lines.logical_lines(text):
            if len(line) > MAX_LINE_BYTES:
                raise TableFormatError(
                    f"{origin}, line {numbers[0]}: longer than {MAX_LINE_BYTES} bytes"
                )
            yield numbers[0], line
    except lines.StrayContinuationError as error:
        raise TableFormatError(
            f"{origin}, line {error.number}: continuation line with no entry"
        ) from None


@dataclass
class KeyValueSource:
    """The entries of a postmap source; duplicates keep the first, as postmap does, and warn."""

    entries: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def parse_key_value(text: str, origin: str) -> KeyValueSource:
    """`key value` lines (postmap(1) input); keys folded to lower case."""
    source = KeyValueSource()
    for number, line in logical_lines(text, origin):
        key, *rest = line.split(None, 1)
        key, value = fold_key(key), "".join(rest).strip()
        if not value:
            raise TableFormatError(
                f"{origin}, line {number}: expected format: key whitespace value"
            )
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise TableFormatError(
                f"{origin}, line {number}: key longer than {MAX_KEY_BYTES} bytes"
            )
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise TableFormatError(
                f"{origin}, line {number}: value longer than {MAX_VALUE_BYTES} bytes"
            )
        if key in source.entries:
            source.warnings.append(f"{origin}, line {number}: duplicate entry: {key!r}")
            continue
        if len(source.entries) >= MAX_ENTRIES:
            raise TableFormatError(f"{origin}, line {number}: more than {MAX_ENTRIES} entries")
        source.entries[key] = value
    return source
