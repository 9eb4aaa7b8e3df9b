"""The table of known main.cf parameters and how each value is checked, as Postfix checks it.

    validate(settings)  -> warnings; raises ConfigError on the first bad value

Values are read with mta.config.values (times in s/m/h/d/w, a bare maximal_queue_lifetime in
days as in Postfix; whole numbers; yes/no; lists). A bad value is fatal: one line naming the
file, line and parameter, `/etc/mta/main.cf, line 7: smtpd_timeout = 5x: bad time value`. A
parameter that nothing knows and no other parameter refers to as $name is only a warning, as
with postconf's "unused parameter".

Security: values come from the administrator's main.cf, which is trusted; numbers are still
bounded (mta.config.values.MAX_PARAMETER_NUMBER) so a typo cannot ask for an absurd count.

This is the start of the full postconf table (issue 5); PARAMETERS lists what is checked now.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping

from mta.config.maincf import BUILTIN_DEFAULTS, ConfigError, Settings, referenced_names
from mta.config.values import parse_bool, parse_list, parse_size, parse_time

_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\Z")
_TRANSPORT = re.compile(r"[A-Za-z0-9_-]+(:.*)?\Z")
_TABLE = re.compile(r"[a-z]+:\S+\Z")


def _host_name(value: str, name: str) -> None:
    if not _HOST_NAME.match(value.strip()):
        raise ConfigError(f"{name} = {value}: bad host name")


def _one_line(value: str, name: str) -> None:
    if not value.strip() or any(char in value for char in "\r\n\0"):
        raise ConfigError(f"{name} = {value}: expected one line of text")


def _directory(value: str, name: str) -> None:
    if not value.strip() or "\0" in value:
        raise ConfigError(f"{name} = {value}: expected a directory name")


def _optional_path(value: str, name: str) -> None:
    if "\0" in value:
        raise ConfigError(f"{name} = {value}: bad file name")


def _transport(value: str, name: str) -> None:
    if not _TRANSPORT.match(value.strip()):
        raise ConfigError(f"{name} = {value}: expected transport or transport:nexthop")


def _networks(value: str, name: str) -> None:
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


Check = Callable[[str, str], object]
"""check(value, name) raises ConfigError when value is bad."""


def _time(default_unit: str = "s", minimum: int = 0) -> Check:
    return lambda value, name: parse_time(value, name, default_unit, minimum)


def _int(minimum: int = 0) -> Check:
    return lambda value, name: parse_size(value, name, minimum)


def _one_of(*choices: str) -> Check:
    def check(value: str, name: str) -> None:
        if value not in choices:
            raise ConfigError(f"{name} = {value}: expected one of {', '.join(choices)}")

    return check


def _any(_value: str, _name: str) -> None:
    """Free text: the service that uses it parses it."""


PARAMETERS: Mapping[str, Check] = {
    "myhostname": _host_name,
    "mydomain": _host_name,
    "myorigin": _host_name,
    "mydestination": _any,
    "mynetworks": _networks,
    "relay_domains": _any,
    "inet_interfaces": interface_addresses,
    "queue_directory": _directory,
    "queue_sync": _one_of("full", "unsafe"),
    "queue_map_size": _int(minimum=1048576),
    "queue_max_size": _int(minimum=1048576),
    "data_directory": _directory,
    "default_transport": _transport,
    "local_transport": _transport,
    "relay_transport": _transport,
    "maillog_file": _optional_path,
    "message_size_limit": _int(),
    "smtpd_recipient_limit": _int(),
    "smtpd_timeout": _time(minimum=1),
    "smtpd_hard_error_limit": _int(minimum=1),
    "smtpd_banner": _one_line,
    "default_process_limit": _int(minimum=1),
    "minimal_backoff_time": _time(minimum=1),
    "maximal_backoff_time": _time(minimum=1),
    "maximal_queue_lifetime": _time(default_unit="d"),
    "bounce_queue_lifetime": _time(default_unit="d"),
    "queue_run_delay": _time(minimum=1),
    "mail_owner": _one_line,
    "master_stop_timeout": _time(minimum=1),
    "max_use": _int(),
    "max_idle": _time(),
    "syslog_name": _one_line,
    "smtpd_forbid_bare_newline": _any,  # yes, normal or no: smtpd checks it
    "disable_vrfy_command": parse_bool,
}


def validate(settings: Settings) -> list[str]:
    """Check every known parameter in effect; return warnings for unknown ones in main.cf.

    Raises ConfigError, naming the file, line and parameter, for the first bad value.
    """
    for name, check in PARAMETERS.items():
        if name not in settings.parameters:
            continue  # no default yet: the service that adds one checks it
        try:
            check(settings.get(name), name)
        except ConfigError as error:
            raise ConfigError(f"{settings.where(name)}{error}") from None
    referenced = referenced_names(settings.parameters.values())
    return [
        f"{settings.where(name)}unknown parameter {name}"
        for name in settings.origins
        if name not in PARAMETERS and name not in BUILTIN_DEFAULTS and name not in referenced
    ]
