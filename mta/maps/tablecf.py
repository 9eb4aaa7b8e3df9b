"""The configuration files of sqlite:, pgsql:, redis: and memcache: tables.

    pgsql:/etc/mta/pgsql-aliases.cf   containing   hosts = 127.0.0.1:5432
                                                    query = SELECT ... WHERE k = '%s'

They have main.cf's syntax (`name = value`, comments, continuation lines), read with
mta.config.maincf, and values in main.cf's notation (times like 5s, whole numbers, lists),
read with mta.config.values. A parameter the table type does not know is an error naming
the file and line (Postfix ignores it; a mistyped name would silently do nothing), and so is
a bad value.

Network tables name the key they send with a template (key_format, a query): %s is the
whole key, %u the local part of user@domain (the whole key without an @), %d the domain (a key
without one is not looked up) and %% a percent sign.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from mta.config.maincf import ConfigError, parse_main_cf_lines
from mta.config.values import parse_list, parse_size, parse_time
from mta.maps.source import read_table_file
from mta.maps.table import TableFormatError

MAX_CONFIG_FILE_BYTES = 1024 * 1024


class TableConfig:
    def __init__(self, spec: str, name: str, known: Collection[str]) -> None:
        self.origin = str(Path(name))
        text = read_table_file(Path(name), spec, MAX_CONFIG_FILE_BYTES)
        try:
            lines = parse_main_cf_lines(text, self.origin)
        except ConfigError as error:
            raise TableFormatError(str(error)) from None
        self.values = {name: value for name, (value, _line) in lines.items()}
        self.lines = {name: line for name, (_value, line) in lines.items()}
        for parameter in self.values:
            if parameter not in known:
                raise TableFormatError(
                    f"{self.where(parameter)}: unknown parameter {parameter!r}"
                    f" (known: {', '.join(sorted(known))})"
                )

    def where(self, name: str) -> str:
        line = self.lines.get(name)
        return f"{self.origin}, line {line}" if line else self.origin

    def text(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def required(self, name: str) -> str:
        value = self.values.get(name, "")
        if not value:
            raise TableFormatError(f"{self.origin}: parameter {name!r} is required")
        return value

    def seconds(self, name: str, default: int) -> float:
        return float(self._checked(name, lambda value: parse_time(value, name), default))

    def number(self, name: str, default: int, minimum: int = 0) -> int:
        return self._checked(name, lambda value: parse_size(value, name, minimum), default)

    def words(self, name: str) -> list[str]:
        return parse_list(self.values.get(name, ""))

    def _checked(self, name: str, parse: Callable[[str], int], default: int) -> int:
        if name not in self.values:
            return default
        try:
            return parse(self.values[name])
        except ConfigError as error:
            raise TableFormatError(f"{self.where(name)}: {error}") from None


def split_address(key: str) -> tuple[str, str | None]:
    """(local part, domain) of user@domain (the last @), or (key, None) without an @."""
    local, at, domain = key.rpartition("@")
    return (local, domain) if at else (key, None)


def expand_key(template: str, key: str, where: str) -> str | None:
    """The template with %s, %u, %d, %% replaced; None when the key must not be looked up."""
    local, domain = split_address(key)
    output: list[str] = []
    position = 0
    while position < len(template):
        char = template[position]
        if char != "%":
            output.append(char)
            position += 1
            continue
        code = template[position + 1 : position + 2]
        position += 2
        if code == "%":
            output.append("%")
        elif code == "s":
            output.append(key)
        elif code == "u":
            if domain is not None and not local:
                return None
            output.append(local)
        elif code == "d":
            if not domain:
                return None
            output.append(domain)
        else:
            raise TableFormatError(f"{where}: unsupported %{code} (use %s, %u, %d, %%)")
    return "".join(output)
