"""Read master.cf in Postfix syntax (master(5)): the table of services the master runs.

    # service type  private unpriv  chroot  wakeup  maxproc command + args
    127.0.0.1:2525 inet n   -       n       -       -       smtpd
    qmgr      unix  n       -       n       300     1       qmgr
    discard   unix  -       -       n       -       -       discard -o syslog_name=mta/x

A line starting with white space continues the previous one; `#` starts a comment at the
beginning of a line. A `-` field takes its default (private y, unpriv y, chroot n, wakeup 0,
maxproc default_process_limit). Types are inet, unix, unix-dgram, fifo and pass; the master
runs inet and unix services. An inet service is `host:port`, `[ipv6]:port`, `port` or a
service name such as `smtp` (port 25); without a host it listens on every `inet_interfaces`
address. Port 0 asks for any free port (tests read the port from master.status). Arguments
are `-o name=value` main.cf overrides for that service and nothing else.

The command column names a program through COMMAND_MODULES (smtpd -> mta.smtpd, discard ->
mta.agents.discard, ...); the master runs it as `python -m MODULE`. When CONFDIR/master.cf is
missing, DEFAULT_MASTER_CF is used: one smtpd on 127.0.0.1:2525 plus qmgr and the discard,
error, retry (the error program), local, smtp, relay (the smtp program) and lmtp agents.

Security: master.cf is trusted (it says what runs), but it is read with a size bound
(MAX_MASTER_CF_BYTES) and at most MAX_SERVICES entries; chroot is not supported and `y` is
refused rather than silently ignored. Errors are one line naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mta.config.maincf import ConfigError
from mta.util.lines import StrayContinuationError, logical_lines

MAX_MASTER_CF_BYTES = 1024 * 1024
MAX_SERVICES = 256
MAX_PROCESS_LIMIT = 1000
MAX_WAKEUP_SECONDS = 7 * 86400

SERVICE_TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")

COMMAND_MODULES: Mapping[str, str] = {
    "smtpd": "mta.smtpd",
    "qmgr": "mta.qmgr",
    "discard": "mta.agents.discard",
    "error": "mta.agents.error",
    "local": "mta.agents.local",
    "virtual": "mta.agents.virtual",
    "smtp": "mta.agents.smtp",
    "lmtp": "mta.agents.lmtp",
    "pipe": "mta.agents.pipe",
}

# Port names for inet services, so that start-up does not depend on /etc/services.
SERVICE_PORTS: Mapping[str, int] = {"smtp": 25, "submission": 587, "smtps": 465, "lmtp": 24}

DEFAULT_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:2525 inet n   -       n       -       -       smtpd
qmgr      unix  n       -       n       300     1       qmgr
discard   unix  -       -       n       -       -       discard
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
local     unix  -       n       n       -       -       local
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
"""
DEFAULT_MASTER_CF_ORIGIN = "built-in master.cf"

_FLAGS = {"y": True, "n": False}
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_INET_NAME = re.compile(r"[A-Za-z0-9_.:\[\]-]+\Z")
_WORD = re.compile(r"[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True, slots=True)
class Service:
    """One master.cf entry, checked."""

    name: str
    type: str
    private: bool
    unprivileged: bool
    wakeup: int
    maxproc: int | None  # None: default_process_limit
    command: str
    overrides: tuple[tuple[str, str], ...]
    origin: str  # "FILE, line N", for messages about this service

    @property
    def module(self) -> str:
        return COMMAND_MODULES[self.command]

    @property
    def builtin(self) -> bool:
        return self.origin.startswith(DEFAULT_MASTER_CF_ORIGIN)

    def inet_endpoint(self) -> tuple[str | None, int]:
        """(host or None for every inet_interfaces address, port) of an inet service."""
        host, colon, port_text = self.name.rpartition(":")
        if not colon:
            port_text = self.name
        port = int(port_text) if port_text.isdigit() else SERVICE_PORTS[port_text]
        return (host.removeprefix("[").removesuffix("]") if colon else None), port


def _flag(field: str, default: bool, what: str, where: str) -> bool:
    if field == "-":
        return default
    if field not in _FLAGS:
        raise ConfigError(f"{where}: {what} field {field!r}: expected y, n or -")
    return _FLAGS[field]


def _number(field: str, what: str, where: str, maximum: int) -> int | None:
    """A number field; None for `-`. A trailing `?` (Postfix: wake up only if used) is allowed."""
    if field == "-":
        return None
    text = field.removesuffix("?")
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{where}: {what} field {field!r}: expected a number or -")
    if int(text) > maximum:
        raise ConfigError(f"{where}: {what} field {field!r}: more than {maximum}")
    return int(text)


def _check_inet_name(name: str, where: str) -> None:
    host, colon, port = name.rpartition(":")
    if not colon:
        port = name
    elif not host or (":" in host and not (host.startswith("[") and host.endswith("]"))):
        raise ConfigError(f"{where}: inet service {name!r}: expected host:port or [ipv6]:port")
    if port.isascii() and port.isdigit():
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"{where}: inet service {name!r}: port out of range")
    elif port not in SERVICE_PORTS:
        raise ConfigError(f"{where}: inet service {name!r}: unknown port name {port!r}")


def _overrides(arguments: list[str], where: str) -> tuple[tuple[str, str], ...]:
    overrides: list[tuple[str, str]] = []
    remaining = iter(arguments)
    for argument in remaining:
        if argument == "-o":
            setting = next(remaining, None)
            if setting is None:
                raise ConfigError(f"{where}: -o without name=value")
        elif argument.startswith("-o"):
            setting = argument[2:]
        else:
            raise ConfigError(f"{where}: unsupported argument {argument!r} (only -o name=value)")
        name, equals, value = setting.partition("=")
        if not equals or not _PARAMETER_NAME.match(name):
            raise ConfigError(f"{where}: -o {setting!r}: expected name=value")
        overrides.append((name, value))
    return tuple(overrides)


def _parse_entry(fields: list[str], where: str) -> Service:
    if len(fields) < 8:
        raise ConfigError(
            f"{where}: expected 8 fields (service type private unpriv chroot "
            f"wakeup maxproc command), got {len(fields)}"
        )
    name, kind, private, unpriv, chroot, wakeup, maxproc, command, *arguments = fields
    if kind not in SERVICE_TYPES:
        raise ConfigError(
            f"{where}: service type {kind!r}: expected one of {', '.join(SERVICE_TYPES)}"
        )
    if kind == "inet" and _INET_NAME.match(name):
        _check_inet_name(name, where)
    elif not _WORD.match(name):
        raise ConfigError(f"{where}: {kind} service name {name!r} must be a plain word")
    if _flag(chroot, False, "chroot", where):
        raise ConfigError(f"{where}: chroot y is not supported: use n or -")
    if command not in COMMAND_MODULES:
        raise ConfigError(
            f"{where}: unknown command {command!r}: expected one of {', '.join(COMMAND_MODULES)}"
        )
    process_limit = _number(maxproc, "maxproc", where, MAX_PROCESS_LIMIT)
    if command == "qmgr" and process_limit != 1:
        raise ConfigError(f"{where}: qmgr must run as exactly one process: set maxproc to 1")
    return Service(
        name=name,
        type=kind,
        private=_flag(private, True, "private", where),
        unprivileged=_flag(unpriv, True, "unpriv", where),
        wakeup=_number(wakeup, "wakeup", where, MAX_WAKEUP_SECONDS) or 0,
        maxproc=process_limit,
        command=command,
        overrides=_overrides(arguments, where),
        origin=where,
    )


def parse_master_cf(text: str, origin: str) -> list[Service]:
    """The services of master.cf text, in file order; origin names the file in errors."""
    try:
        entries = [(numbers[0], line.split()) for numbers, line in logical_lines(text)]
    except StrayContinuationError as error:
        raise ConfigError(
            f"{origin}, line {error.number}: continuation line without a service"
        ) from None
    if len(entries) > MAX_SERVICES:
        raise ConfigError(f"{origin}: more than {MAX_SERVICES} services")
    services: list[Service] = []
    seen: dict[tuple[str, str], str] = {}
    for number, fields in entries:
        where = f"{origin}, line {number}"
        service = _parse_entry(fields, where)
        key = (service.name, service.type)
        if key in seen:
            raise ConfigError(
                f"{where}: duplicate service {service.name}/{service.type}, "
                f"first defined at {seen[key]}"
            )
        seen[key] = where
        services.append(service)
    return services


def load_services(config_dir: Path) -> list[Service]:
    """CONFDIR/master.cf, or the built-in table when there is no such file."""
    master_cf = config_dir / "master.cf"
    try:
        with master_cf.open("rb") as handle:
            raw = handle.read(MAX_MASTER_CF_BYTES + 1)
    except FileNotFoundError:
        return parse_master_cf(DEFAULT_MASTER_CF, DEFAULT_MASTER_CF_ORIGIN)
    except OSError as error:
        raise ConfigError(f"{master_cf}: cannot read: {error.strerror}") from error
    if len(raw) > MAX_MASTER_CF_BYTES:
        raise ConfigError(f"{master_cf}: larger than {MAX_MASTER_CF_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{master_cf}: not UTF-8 at byte {error.start}") from error
    return parse_master_cf(text, str(master_cf))
