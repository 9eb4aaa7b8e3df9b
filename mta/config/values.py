"""Typed readers for main.cf values, as Postfix reads them: whole numbers, times, yes/no, lists.

    parse_time("5m", "smtpd_timeout") == 300
    duration(settings, "smtpd_timeout") == 300.0

Times are a whole number with an optional one-letter unit (s, m, h, d, w); a bare number uses
the parameter's default unit, seconds unless said otherwise (Postfix reads a bare
maximal_queue_lifetime in days). Numbers are plain decimal digits, sizes in bytes without units.
Booleans are yes or no, in any case. Lists are separated by commas and/or white space.
The check_* functions look at the shape of one value (a host name, a transport, networks, table
references) and return nothing; mta.config.table says which parameter gets which check.

The parse_* functions raise ConfigError("NAME = VALUE: bad time value"); the readers that take
Settings put "FILE, line N: " in front when main.cf set the parameter, so a wrong setting stops
a service with one line naming the file, the line and the parameter. Every number is bounded by
MAX_PARAMETER_NUMBER.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from mta.config.errors import ConfigError

if TYPE_CHECKING:
    from mta.config.maincf import Settings

MAX_PARAMETER_NUMBER = 2**53  # beyond any sane limit, and still exact as a float
_TIME = re.compile(r"([0-9]+)([smhdw]?)\Z")  # ASCII digits only, as parse_size
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BOOLEANS = {"yes": True, "no": False}
_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\Z")
_TRANSPORT = re.compile(r"[A-Za-z0-9_-]+(:.*)?\Z")
_TABLE = re.compile(r"[a-z][a-z0-9_]*:\S+\Z")
# One list item: a table (inline:{ k=v, { k = v, w }, ... } keeps what is inside its braces,
# one level of nested braces included) or a word.
_LIST_ITEM = re.compile(r"!*[a-z][a-z0-9_]*:\{(?:[^{}]|\{[^{}]*\})*\}|[^\s,]+")
_TABLE_REFERENCE = re.compile(r"[a-z][a-z0-9_]*:\S")
T = TypeVar("T")
# more significant digits than this are out of range before int() reads them: int() refuses
# digit strings over sys.get_int_max_str_digits() (4300) with a ValueError, not a ConfigError
_MAX_DIGITS = len(str(MAX_PARAMETER_NUMBER))


def _whole(digits: str) -> int:
    """int(digits) of ASCII digits, or one past MAX_PARAMETER_NUMBER when they are too many."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= _MAX_DIGITS else MAX_PARAMETER_NUMBER + 1


def parse_time(value: str, name: str, default_unit: str = "s", minimum: int = 0) -> int:
    """Seconds in Postfix's notation: `300`, `300s`, `5m`, `1h`, `2d`, `1w`."""
    match = _TIME.match(value.strip())
    if match is None:
        raise ConfigError(f"{name} = {value}: bad time value")
    seconds = _whole(match.group(1)) * _TIME_UNITS[match.group(2) or default_unit]
    if not minimum <= seconds <= MAX_PARAMETER_NUMBER:
        raise ConfigError(f"{name} = {value}: time value out of range (at least {minimum}s)")
    return seconds


def parse_size(value: str, name: str, minimum: int = 0) -> int:
    """A whole number: a count, or a size in bytes (Postfix sizes have no units)."""
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{name} = {value}: bad numerical value")
    number = _whole(text)
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
    """A Postfix list: items separated by commas and/or white space, a table's braces
    (`inline:{ k=v, { k = v w } }`) keeping what is inside them as one item."""
    return _LIST_ITEM.findall(value)


def check_host_name(value: str, name: str) -> None:
    if not _HOST_NAME.match(value.strip()):
        raise ConfigError(f"{name} = {value}: bad host name")


def check_one_line(value: str, name: str) -> None:
    if not value.strip() or any(char in value for char in "\r\n\0"):
        raise ConfigError(f"{name} = {value}: expected one line of text")


def check_text(value: str, name: str) -> None:
    """Free text, possibly empty, that the service using it parses; only NUL is refused."""
    if "\0" in value:
        raise ConfigError(f"{name} = {value}: NUL character in value")


def check_directory(value: str, name: str) -> None:
    if not value.strip() or "\0" in value:
        raise ConfigError(f"{name} = {value}: expected a directory name")


def check_transport(value: str, name: str) -> None:
    if not _TRANSPORT.match(value.strip()):
        raise ConfigError(f"{name} = {value}: expected transport or transport:nexthop")


def check_networks(value: str, name: str) -> None:
    """mynetworks: network/mask patterns ([::1]/128 for IPv6), host names, files, tables."""
    for item in parse_list(value):
        pattern = item.removeprefix("!")
        if pattern.startswith("/") or _TABLE.match(pattern):
            continue
        if pattern.startswith("[") or pattern[:1].isdigit():
            address, _slash, mask = pattern.partition("/")
            address = address.removeprefix("[").removesuffix("]")
            try:
                ipaddress.ip_network(f"{address}/{mask}" if mask else address, strict=False)
            except ValueError:
                raise ConfigError(f"{name} = {value}: bad network pattern {item!r}") from None
        elif not _HOST_NAME.match(pattern):
            raise ConfigError(f"{name} = {value}: bad network pattern {item!r}")


def table_references(value: str, name: str) -> list[str]:
    """The `type:name` lookup tables of a list such as virtual_alias_maps, in order."""
    references = parse_list(value)
    for reference in references:
        if not _TABLE_REFERENCE.match(reference):
            raise ConfigError(
                f"{name} = {value}: expected type:name lookup tables, got {reference!r}"
            )
    return references


def interface_addresses(value: str, name: str = "inet_interfaces") -> list[str]:
    """The addresses that inet_interfaces names: `all`, `loopback-only` or IP addresses.

    Host names are refused (Postfix resolves them at start-up; a DNS answer should not decide
    where a mail server listens).
    """
    items = parse_list(value)
    if items == ["all"]:
        return ["0.0.0.0", "::"]
    if items == ["loopback-only"]:
        return ["127.0.0.1"]
    addresses = []
    for item in items:
        address = item.removeprefix("[").removesuffix("]")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(
                f"{name} = {value}: {item!r} is not an IP address, all or loopback-only"
            ) from None
        addresses.append(address)
    if not addresses:
        raise ConfigError(f"{name} = {value}: no addresses")
    return addresses


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
