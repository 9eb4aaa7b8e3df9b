"""Postfix's configuration-file line rules, shared by main.cf, master.cf and table files.

Blank lines and lines whose first non-blank character is `#` are skipped; a line that starts
with white space continues the logical line before it (joined with one space). postconf(5),
master(5) and postmap(1) all read their files this way.
"""

from __future__ import annotations

from collections.abc import Iterator


class StrayContinuationError(ValueError):
    """A continuation line before any logical line; `number` is its line number."""

    def __init__(self, number: int) -> None:
        super().__init__(f"line {number}: continuation line with nothing to continue")
        self.number = number


def logical_lines(text: str) -> Iterator[tuple[tuple[int, ...], str]]:
    """(physical line numbers, joined text) of each logical line, in file order."""
    numbers: list[int] = []
    joined = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if not numbers:
                raise StrayContinuationError(number)
            numbers.append(number)
            joined = f"{joined} {stripped}"
            continue
        if numbers:
            yield tuple(numbers), joined
        numbers, joined = [number], stripped
    if numbers:
        yield tuple(numbers), joined
