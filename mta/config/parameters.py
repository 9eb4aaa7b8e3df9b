"""Check the parameters in effect against the parameter table, as postconf checks main.cf.

    validate(settings)  -> warnings; raises ConfigError on the first bad value

Each parameter's type, bounds and default are rows of mta.config.table. A bad value is fatal:
one line naming the file, line and parameter, `/etc/mta/main.cf, line 7: smtpd_timeout = 5x:
bad time value`. A parameter in main.cf that the table does not know and no other parameter
refers to as $name is only a warning, as with postconf's "unused parameter", with the closest
known name as a suggestion: `unknown parameter smtpd_timout (did you mean smtpd_timeout?)`.

Security: values come from the administrator's main.cf, which is trusted; numbers are still
bounded (mta.config.values.MAX_PARAMETER_NUMBER) so a typo cannot ask for an absurd count.
"""

from __future__ import annotations

import difflib

from mta.config.errors import ConfigError
from mta.config.maincf import Settings, referenced_names
from mta.config.table import PARAMETERS, lookup

__all__ = ["PARAMETERS", "check_parameter", "unknown_parameter_message", "validate"]

SUGGESTION_CUTOFF = 0.75


def unknown_parameter_message(name: str) -> str:
    """`unknown parameter NAME`, with the closest known name when one is close."""
    close = difflib.get_close_matches(name, PARAMETERS, n=1, cutoff=SUGGESTION_CUTOFF)
    return f"unknown parameter {name}" + (f" (did you mean {close[0]}?)" if close else "")


def check_parameter(settings: Settings, name: str) -> None:
    """Check one known parameter's value in effect; ConfigError names file, line, parameter."""
    parameter = lookup(name)
    if parameter is None:
        return
    try:
        parameter.check(settings.get(name))
    except ConfigError as error:
        raise ConfigError(f"{settings.where(name)}{error}") from None


def validate(settings: Settings) -> list[str]:
    """Check every known parameter in effect; return warnings for unknown ones in main.cf.

    Raises ConfigError, naming the file, line and parameter, for the first bad value.
    """
    for name in settings.parameters:
        check_parameter(settings, name)
    referenced = referenced_names(settings.parameters.values())
    return [
        f"{settings.where(name)}{unknown_parameter_message(name)}"
        for name in settings.origins
        if lookup(name) is None and name not in referenced
    ]
