"""Read main.cf in Postfix syntax (postconf(5)): `name = value`, comments, continuation lines.

A line that starts with white space continues the previous one; `#` starts a comment only at
the beginning of a logical line; `$name` and `${name}` expand to other parameters, with a bound
on nesting so a loop cannot hang. A missing main.cf means the built-in defaults, which run on
loopback under ./mta-data with no root. Errors name the file and line.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MAX_EXPANSION_DEPTH = 20
MAX_MAIN_CF_BYTES = 4 * 1024 * 1024


def _host_name() -> str:
    """This host's name without a DNS lookup; Postfix appends .localdomain to a bare name."""
    name = socket.gethostname().lower().rstrip(".")
    return name if "." in name else f"{name}.localdomain"


BUILTIN_DEFAULTS: Mapping[str, str] = {
    "base_directory": "mta-data",
    "queue_directory": "$base_directory/queue",
    "queue_sync": "full",
    "queue_map_size": "67108864",
    "queue_max_size": "17179869184",
    "data_directory": "$base_directory/data",
    "myhostname": _host_name(),
    "mydomain": _host_name().partition(".")[2],
    "myorigin": "$myhostname",
    "mail_name": "mta",
    "inet_interfaces": "127.0.0.1",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "relay_domains": "",
    "message_size_limit": "10240000",
    "smtpd_banner": "$myhostname ESMTP $mail_name",
    "smtpd_recipient_limit": "1000",
    "smtpd_hard_error_limit": "20",
    "smtpd_timeout": "300s",
    "smtpd_forbid_bare_newline": "yes",
    "disable_vrfy_command": "no",
    "smtpd_worker_session_limit": "10000",
    "smtpd_shutdown_timeout": "10s",
    "queue_run_delay": "300s",
    "qmgr_message_active_limit": "20000",
    "qmgr_intake_batch_limit": "500",
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "4000s",
    "maximal_queue_lifetime": "5d",
    "bounce_queue_lifetime": "5d",
    "transport_retry_time": "60s",
    "delivery_agent_crash_retry_time": "10s",
    "default_destination_concurrency_limit": "20",
    "initial_destination_concurrency": "5",
    "default_destination_recipient_limit": "50",
    "default_destination_concurrency_failed_cohort_limit": "1",
    "local_transport": "local:$myhostname",
    "relay_transport": "relay",
    "default_transport": "smtp",
    # master (mta.master): see its docstring
    "mail_owner": "mta",
    "default_process_limit": "100",
    "master_stop_timeout": "30s",
    "max_use": "0",
    "max_idle": "0",
    "syslog_name": "mta",
    "maillog_file": "",
}

_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+))")


class ConfigError(Exception):
    """A configuration file or value is wrong; str() is one line naming file and line."""


def parse_main_cf(text: str, origin: str) -> dict[str, str]:
    """Return the raw (unexpanded) parameters of main.cf text; origin names it in errors."""
    return {name: value for name, (value, _line) in parse_main_cf_lines(text, origin).items()}


def parse_main_cf_lines(text: str, origin: str) -> dict[str, tuple[str, int]]:
    """Like parse_main_cf, with the line where each parameter's (last) setting starts."""
    parameters: dict[str, tuple[str, int]] = {}
    logical: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            if not logical:
                raise ConfigError(f"{origin}, line {number}: continuation line without a parameter")
            first, joined = logical[-1]
            logical[-1] = (first, f"{joined} {line.strip()}")
        else:
            logical.append((number, line.strip()))
    for number, line in logical:
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or not _NAME.match(name):
            raise ConfigError(f"{origin}, line {number}: expected 'name = value', got {line!r}")
        parameters.pop(name, None)  # the later setting wins and takes its place in file order
        parameters[name] = (value.strip(), number)
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


def load_settings(config_dir: Path) -> Settings:
    """Load config_dir/main.cf over the built-in defaults; no file means defaults only."""
    main_cf = config_dir / "main.cf"
    parameters = dict(BUILTIN_DEFAULTS)
    try:
        with main_cf.open("rb") as handle:
            raw = handle.read(MAX_MAIN_CF_BYTES + 1)
    except FileNotFoundError:
        return Settings(parameters)
    except OSError as error:
        raise ConfigError(f"{main_cf}: cannot read: {error.strerror}") from error
    if len(raw) > MAX_MAIN_CF_BYTES:
        raise ConfigError(f"{main_cf}: larger than {MAX_MAIN_CF_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{main_cf}: not UTF-8 at byte {error.start}") from error
    lines = parse_main_cf_lines(text, str(main_cf))
    parameters.update((name, value) for name, (value, _line) in lines.items())
    origins = {name: f"{main_cf}, line {line}" for name, (_value, line) in lines.items()}
    return Settings(parameters, origins)
