"""Typed readers for main.cf values, as Postfix reads them: whole numbers, times, yes/no, lists.

    parse_time("5m", "smtpd_timeout") == 300
    duration(settings, "smtpd_timeout") == 300.0

Times are a whole number with an optional one-letter unit (s, m, h, d, w); a bare number uses
the parameter's default unit, seconds unless said otherwise (Postfix reads a bare
maximal_queue_lifetime in days). Numbers are plain decimal digits, sizes in bytes without units.
Booleans are yes or no, in any case. Lists are separated by commas and/or white space.

The parse_* functions raise ConfigError("NAME = VALUE: bad time value"); the readers that take
Settings put "FILE, line N: " in front when main.cf set the parameter, so a wrong setting stops
a service with one line naming the file, the line and the parameter. Every number is bounded by
MAX_PARAMETER_NUMBER.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from mta.config.maincf import ConfigError, Settings

MAX_PARAMETER_NUMBER = 2**53  # beyond any sane limit, and still exact as a float
_TIME = re.compile(r"(\d+)([smhdw]?)\Z")
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BOOLEANS = {"yes": True, "no": False}
_LIST_SEPARATORS = re.compile(r"[\s,]+")
T = TypeVar("T")


def parse_time(value: str, name: str, default_unit: str = "s", minimum: int = 0) -> int:
    """Seconds in Postfix's notation: `300`, `300s`, `5m`, `1h`, `2d`, `1w`."""
    match = _TIME.match(value.strip())
    if match is None:
        raise ConfigError(f"{name} = {value}: bad time value")
    seconds = int(match.group(1)) * _TIME_UNITS[match.group(2) or default_unit]
    if not minimum <= seconds <= MAX_PARAMETER_NUMBER:
        raise ConfigError(f"{name} = {value}: time value out of range (at least {minimum}s)")
    return seconds


def parse_size(value: str, name: str, minimum: int = 0) -> int:
    """A whole number: a count, or a size in bytes (Postfix sizes have no units)."""
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{name} = {value}: bad numerical value")
    number = int(text)
    if not minimum <= number <= MAX_PARAMETER_NUMBER:
        raise ConfigError(f"{name} = {value}: numerical value out of range (at least {minimum})")
    return number


def parse_bool(value: str, name: str) -> bool:
    """yes or no, in any case."""
    flag = _BOOLEANS.get(value.strip().lower())
    if flag is None:
        raise ConfigError(f"{name} = {value}: bad boolean value (expected yes or no)")
    return flag


def parse_list(value: str) -> list[str]:
    """A Postfix list: items separated by commas and/or white space."""
    return [item for item in _LIST_SEPARATORS.split(value.strip()) if item]


def located(settings: Settings, name: str, parse: Callable[[str, str], T]) -> T:
    """parse(value, name) on a parameter in effect; an error names its file and line."""
    try:
        return parse(settings.get(name), name)
    except ConfigError as error:
        raise ConfigError(f"{settings.where(name)}{error}") from None


def number(settings: Settings, name: str, minimum: int = 0) -> int:
    """A non-negative integer parameter, at least `minimum`."""
    return located(settings, name, lambda value, _: parse_size(value, name, minimum))


def duration(settings: Settings, name: str, default_unit: str = "s", minimum: int = 1) -> float:
    """A time parameter in seconds (at least one second unless `minimum` says otherwise)."""
    return float(
        located(settings, name, lambda value, _: parse_time(value, name, default_unit, minimum))
    )


def boolean(settings: Settings, name: str) -> bool:
    return located(settings, name, parse_bool)


def word_list(settings: Settings, name: str) -> list[str]:
    """A comma/space separated list, as Postfix reads mydestination or relay_domains."""
    return parse_list(settings.get(name))
