"""`mta config`: show and change main.cf and master.cf, like postconf.

  config [-n | -d] [-x] [-h] [--json] [NAME...]   parameters in effect, sorted, `name = value`;
                                                 -n only those set in main.cf, -d the defaults,
                                                 -x with $name expanded, -h values only
  config -e NAME=VALUE...                        set parameters in main.cf, in place
  config -X NAME...                              remove parameters from main.cf
  config -M [--json] [SERVICE[/TYPE]...]         master.cf services, in postconf -M layout
  config --doc                                   the parameter reference (docs/parameters.md)

Works on main.cf and master.cf in the -c directory. Every parameter comes from the one table
in mta.config.table. A NAME the table does not know gets `mta: warning: NAME: unknown
parameter` and is skipped, as with postconf (exit 0). Listing checks main.cf as the daemons
do: unknown parameters are warnings with a "did you mean"; a bad value is an error naming the
file, line and parameter, printed after the listing, with exit EX_CONFIG. -e checks each new
value against the table first and refuses a bad one (EX_DATAERR), leaving main.cf untouched;
the edit keeps comments, layout and other settings and is an atomic rename. --json writes JSON
Lines, one object per parameter or service, like `mta queue list --json`.

Exit codes (sysexits): EX_USAGE for conflicting options or a malformed NAME=VALUE, EX_CONFIG
for a main.cf or master.cf that cannot be read, EX_CANTCREAT when main.cf cannot be written.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from mta.cli.context import app_context, emit_json_line, fail
from mta.config.edit import edit_main_cf, replace_main_cf
from mta.config.maincf import (
    BUILTIN_DEFAULTS,
    ConfigError,
    Settings,
    expand,
    read_main_cf,
    referenced_names,
    settings_from_text,
)
from mta.config.mastercf import Service, load_services
from mta.config.parameters import unknown_parameter_message, validate
from mta.config.table import lookup as lookup_parameter
from mta.config.table import reference_markdown
from mta.util import sysexits

_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_]+\Z")


def warn(message: str) -> None:
    click.echo(f"mta: warning: {message}", err=True)


@click.command("config", context_settings={"help_option_names": ["--help"]})
@click.option("-n", "set_only", is_flag=True, help="Only parameters set in main.cf.")
@click.option("-d", "--defaults", is_flag=True, help="Default values instead of those in effect.")
@click.option("-x", "expand_values", is_flag=True, help="Expand $name in values.")
@click.option("-h", "values_only", is_flag=True, help="Values only, without `name = `.")
@click.option("-e", "edit", is_flag=True, help="Set NAME=VALUE... in main.cf.")
@click.option("-X", "remove", is_flag=True, help="Remove NAME... from main.cf.")
@click.option("-M", "master", is_flag=True, help="List master.cf services [SERVICE[/TYPE]...].")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per entry.")
@click.option("--doc", is_flag=True, help="Print the parameter reference in Markdown.")
@click.argument("names", nargs=-1)
@click.pass_context
def config_command(
    ctx: click.Context,
    set_only: bool,
    defaults: bool,
    expand_values: bool,
    values_only: bool,
    edit: bool,
    remove: bool,
    master: bool,
    as_json: bool,
    doc: bool,
    names: tuple[str, ...],
) -> None:
    """Show or change the configuration, like postconf."""
    modes = [flag for flag, chosen in (("-e", edit), ("-X", remove), ("-M", master)) if chosen]
    if doc:
        modes.append("--doc")
    if len(modes) > 1 or (modes and (set_only or defaults)) or (set_only and defaults):
        fail("choose one of -n, -d, -e, -X, -M and --doc", sysexits.EX_USAGE)
    config_dir = app_context(ctx).config_dir
    if doc:
        click.echo(reference_markdown(), nl=False)
    elif edit or remove:
        if not names:
            fail(f"{modes[0]} needs at least one parameter", sysexits.EX_USAGE)
        change_main_cf(config_dir / "main.cf", names, remove)
    elif master:
        show_services(config_dir, names, as_json)
    else:
        show_parameters(config_dir, names, set_only, defaults, expand_values, values_only, as_json)


# -- parameters ---------------------------------------------------------------------------------


def load(main_cf: Path) -> tuple[str, Settings]:
    """main.cf's text ("" when there is none) and the settings in effect, or exit EX_CONFIG."""
    try:
        text = read_main_cf(main_cf)
        return text or "", settings_from_text(text or "", str(main_cf))
    except ConfigError as error:
        fail(str(error), sysexits.EX_CONFIG)


def show_parameters(
    config_dir: Path,
    names: tuple[str, ...],
    set_only: bool,
    defaults: bool,
    expand_values: bool,
    values_only: bool,
    as_json: bool,
) -> None:
    settings = Settings(BUILTIN_DEFAULTS) if defaults else load(config_dir / "main.cf")[1]
    problem: ConfigError | None = None
    if not defaults:
        try:
            warnings = validate(settings)
        except ConfigError as error:
            problem, warnings = error, []
        for warning in warnings:
            warn(warning)

    if names:
        shown = []
        for name in names:
            if lookup_parameter(name) is None and name not in settings.parameters:
                warn(f"{name}: unknown parameter")
            elif not set_only or name in settings.origins:
                shown.append(name)
    elif set_only:
        shown = sorted(settings.origins)
    else:
        # Like postconf: the known parameters, and those of main.cf that are known
        # (per-transport) or used as $name; unused ones were warned about above.
        referenced = referenced_names(settings.parameters.values())
        in_use = {
            name
            for name in settings.origins
            if lookup_parameter(name) is not None or name in referenced
        }
        shown = sorted(set(BUILTIN_DEFAULTS) | in_use)

    for name in shown:
        try:
            value = parameter_value(settings, name, expand_values)
        except ConfigError as error:  # a $name loop, already reported by validate()
            fail(f"{settings.where(name)}{error}", sysexits.EX_CONFIG)
        if as_json:
            emit_json_line({"name": name, "value": value, "origin": settings.origins.get(name)})
        elif values_only:
            click.echo(value)
        else:
            click.echo(f"{name} = {value}" if value else f"{name} =")
    if problem is not None:
        fail(str(problem), sysexits.EX_CONFIG)


def parameter_value(settings: Settings, name: str, expand_values: bool) -> str:
    """The raw or expanded value; a per-transport parameter not set shows its default."""
    parameters = settings.parameters
    parameter = lookup_parameter(name)
    if name not in parameters and parameter is not None:
        parameters = {**parameters, name: parameter.default}
    return expand(name, parameters) if expand_values else parameters[name]


# -- editing ------------------------------------------------------------------------------------


def change_main_cf(main_cf: Path, arguments: tuple[str, ...], remove: bool) -> None:
    changes: dict[str, str | None] = {}
    for argument in arguments:
        if remove:
            name, equals, value = argument.strip(), "=", None
        else:
            name, equals, text = argument.partition("=")
            name, value = name.strip(), text.strip()
        if not equals or not _PARAMETER_NAME.match(name):
            fail(f"{argument!r}: expected {'NAME' if remove else 'NAME=VALUE'}", sysexits.EX_USAGE)
        changes[name] = value
    text, _settings = load(main_cf)
    try:
        new_text = edit_main_cf(text, changes, str(main_cf))
    except ConfigError as error:
        fail(str(error), sysexits.EX_USAGE)
    new_settings = settings_from_text(new_text, str(main_cf))
    for name, value in changes.items():
        parameter = lookup_parameter(name)
        if value is None:
            continue
        if parameter is None:
            warn(f"{main_cf}: {unknown_parameter_message(name)}")
            continue
        try:
            parameter.check(new_settings.get(name))
        except ConfigError as error:
            fail(f"{main_cf} not changed: {error}", sysexits.EX_DATAERR)
    if new_text == text:
        return
    try:
        replace_main_cf(main_cf, new_text)
    except OSError as error:
        fail(f"{main_cf}: cannot write: {error.strerror}", sysexits.EX_CANTCREAT)


# -- master.cf ----------------------------------------------------------------------------------


def show_services(config_dir: Path, selectors: tuple[str, ...], as_json: bool) -> None:
    try:
        services = load_services(config_dir)
    except ConfigError as error:
        fail(str(error), sysexits.EX_CONFIG)
    chosen = services
    if selectors:
        chosen = [
            service
            for service in services
            if any(selects(selector, service) for selector in selectors)
        ]
        for selector in selectors:
            if not any(selects(selector, service) for service in services):
                warn(f"{selector}: unknown service")
    for service in chosen:
        if as_json:
            emit_json_line(service_record(service))
        else:
            click.echo(service_line(service))


def selects(selector: str, service: Service) -> bool:
    """SERVICE or SERVICE/TYPE, as postconf -M takes them."""
    return selector in (service.name, f"{service.name}/{service.type}")


def service_line(service: Service) -> str:
    """One entry in postconf -M layout: fields in effect, `-o name=value` arguments."""
    fields = [
        f"{service.name:<9}",
        f"{service.type:<5}",
        f"{'y' if service.private else 'n':<7}",
        f"{'y' if service.unprivileged else 'n':<7}",
        f"{'n':<7}",  # chroot: only n is supported
        f"{service.wakeup or '-'!s:<7}",
        f"{'-' if service.maxproc is None else service.maxproc!s:<7}",
        service.command,
    ]
    arguments = [f"-o {name}={value}" for name, value in service.overrides]
    return " ".join([*fields, *arguments])


def service_record(service: Service) -> dict[str, object]:
    return {
        "service": service.name,
        "type": service.type,
        "private": service.private,
        "unprivileged": service.unprivileged,
        "chroot": False,
        "wakeup": service.wakeup,
        "maxproc": service.maxproc,
        "command": service.command,
        "overrides": dict(service.overrides),
        "origin": service.origin,
    }
