"""Read main.cf in Postfix syntax (postconf(5)): `name = value`, comments, continuation lines.

A line that starts with white space continues the previous one; `#` starts a comment only at
the beginning of a logical line; `$name` and `${name}` expand to other parameters, with a bound
on nesting so a loop cannot hang. A missing main.cf means the built-in defaults, which run on
loopback under ./mta-data with no root. Errors name the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mta.config.errors import ConfigError
from mta.config.table import TABLE
from mta.util.lines import StrayContinuationError, logical_lines

__all__ = [
    "BUILTIN_DEFAULTS",
    "ConfigError",
    "MainCfSetting",
    "Settings",
    "expand",
    "load_settings",
    "main_cf_settings",
    "parse_main_cf",
    "parse_main_cf_lines",
    "read_main_cf",
    "referenced_names",
    "settings_from_text",
]

MAX_EXPANSION_DEPTH = 20
MAX_MAIN_CF_BYTES = 4 * 1024 * 1024


# Every parameter in the table, at its default; derived so that the table stays the one source.
BUILTIN_DEFAULTS: Mapping[str, str] = {parameter.name: parameter.default for parameter in TABLE}

_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+))")


@dataclass(frozen=True, slots=True)
class MainCfSetting:
    """One `name = value` logical line of main.cf and the physical lines (1-based) it spans.

    Comment and blank lines inside a continued setting are not part of it, as Postfix reads them.
    """

    name: str
    value: str
    lines: tuple[int, ...]


def main_cf_settings(text: str, origin: str) -> list[MainCfSetting]:
    """Every setting of main.cf text in file order, repeats included; origin names it in errors."""
    try:
        logical = list(logical_lines(text))
    except StrayContinuationError as error:
        raise ConfigError(
            f"{origin}, line {error.number}: continuation line without a parameter"
        ) from None
    settings = []
    for numbers, line in logical:
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not _NAME.match(name):
            raise ConfigError(f"{origin}, line {numbers[0]}: expected 'name = value', got {line!r}")
        settings.append(MainCfSetting(name, value.strip(), tuple(numbers)))
    return settings


def parse_main_cf(text: str, origin: str) -> dict[str, str]:
    """Return the raw (unexpanded) parameters of main.cf text; origin names it in errors."""
    return {name: value for name, (value, _line) in parse_main_cf_lines(text, origin).items()}


def parse_main_cf_lines(text: str, origin: str) -> dict[str, tuple[str, int]]:
    """Like parse_main_cf, with the line where each parameter's (last) setting starts."""
    parameters: dict[str, tuple[str, int]] = {}
    for setting in main_cf_settings(text, origin):
        parameters.pop(setting.name, None)  # the later setting wins and takes its place
        parameters[setting.name] = (setting.value, setting.lines[0])
    return parameters


def expand(name: str, parameters: Mapping[str, str]) -> str:
    """Expand $name references in parameter `name`; unknown names expand to empty."""

    def resolve(value: str, depth: int) -> str:
        if depth > MAX_EXPANSION_DEPTH:
            raise ConfigError(f"parameter {name}: $name expansion nested deeper than {depth}")

        def substitute(match: re.Match[str]) -> str:
            referenced = match.group(1) or match.group(2) or match.group(3)
            return resolve(parameters.get(referenced, ""), depth + 1)

        return _REFERENCE.sub(substitute, value)

    return resolve(parameters.get(name, ""), 0)


def referenced_names(values: Iterable[str]) -> set[str]:
    """The parameter names that `values` refer to as $name, ${name} or $(name)."""
    return {
        match.group(1) or match.group(2) or match.group(3)
        for value in values
        for match in _REFERENCE.finditer(value)
    }


@dataclass(frozen=True)
class Settings:
    """The parameters in effect: built-in defaults overridden by main.cf.

    `origins` maps each parameter set in main.cf to where: "/etc/mta/main.cf, line 7".
    """

    parameters: Mapping[str, str]
    origins: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return expand(name, self.parameters)

    def where(self, name: str) -> str:
        """The "FILE, line N: " prefix for a message about `name`; empty for a default."""
        origin = self.origins.get(name)
        return f"{origin}: " if origin else ""

    def path(self, name: str) -> Path:
        return Path(self.get(name)).absolute()

    @property
    def queue_directory(self) -> Path:
        return self.path("queue_directory")

    @property
    def data_directory(self) -> Path:
        return self.path("data_directory")


def read_main_cf(main_cf: Path) -> str | None:
    """The text of a main.cf file, or None when there is none; bounded and checked as UTF-8."""
    try:
        with main_cf.open("rb") as handle:
            raw = handle.read(MAX_MAIN_CF_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"{main_cf}: cannot read: {error.strerror}") from error
    if len(raw) > MAX_MAIN_CF_BYTES:
        raise ConfigError(f"{main_cf}: larger than {MAX_MAIN_CF_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{main_cf}: not UTF-8 at byte {error.start}") from error


def settings_from_text(text: str, origin: str) -> Settings:
    """The built-in defaults overridden by main.cf text; origin names the file."""
    lines = parse_main_cf_lines(text, origin)
    parameters = dict(BUILTIN_DEFAULTS)
    parameters.update((name, value) for name, (value, _line) in lines.items())
    origins = {name: f"{origin}, line {line}" for name, (_value, line) in lines.items()}
    return Settings(parameters, origins)


def load_settings(config_dir: Path) -> Settings:
    """Load config_dir/main.cf over the built-in defaults; no file means defaults only."""
    main_cf = config_dir / "main.cf"
    text = read_main_cf(main_cf)
    if text is None:
        return Settings(dict(BUILTIN_DEFAULTS))
    return settings_from_text(text, str(main_cf))
