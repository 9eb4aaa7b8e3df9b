"""Change main.cf in place, as `postconf -e` and `postconf -X` do, keeping everything else.

    edit_main_cf(text, {"relayhost": "[mx.example]:587", "smtpd_timeout": None}, "main.cf")

A parameter that is set has its first setting replaced by one `name = value` line, at the same
place; its continuation lines and any later settings of it go. A parameter that is not set is
appended at the end. None removes every setting of the parameter. Comments, blank lines (also
those inside a continued setting), other settings and line endings stay byte for byte.

replace_main_cf() writes the result to a temporary file in the same directory, flushed to disk
with the old file's permissions, and renames it over main.cf: a reader (a starting daemon, an
`mta reload`) sees the old file or the new one, never half of one. Two editors running at once
can still lose one edit, as with postconf; main.cf is the administrator's file.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

from mta.config.errors import ConfigError
from mta.config.maincf import main_cf_settings
from mta.util.files import replace_file

NEW_FILE_MODE = 0o644


def _line_ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :] or "\n"


def edit_main_cf(text: str, changes: Mapping[str, str | None], origin: str) -> str:
    """main.cf text with each parameter in `changes` set to its value, or removed for None."""
    for name, value in changes.items():
        if value is not None and any(char in value for char in "\r\n\0"):
            raise ConfigError(f"{name}: a value must be one line of text")
    physical = text.splitlines(keepends=True)
    replacements: dict[int, str] = {}
    dropped: set[int] = set()
    written: set[str] = set()
    for setting in main_cf_settings(text, origin):
        if setting.name not in changes:
            continue
        first, *continuation = (number - 1 for number in setting.lines)
        dropped.update(continuation)
        value = changes[setting.name]
        if value is None or setting.name in written:
            dropped.add(first)
        else:
            replacements[first] = _setting_line(setting.name, value, _line_ending(physical[first]))
            written.add(setting.name)
    lines = [
        replacements.get(index, line) for index, line in enumerate(physical) if index not in dropped
    ]
    appended = [
        _setting_line(name, value, "\n")
        for name, value in changes.items()
        if value is not None and name not in written
    ]
    if appended and lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    return "".join(lines + appended)


def _setting_line(name: str, value: str, ending: str) -> str:
    return f"{name} = {value.strip()}{ending}" if value.strip() else f"{name} ={ending}"


def replace_main_cf(main_cf: Path, text: str) -> None:
    """Atomically and durably replace main_cf by text, keeping its permission bits."""
    try:
        mode = stat.S_IMODE(main_cf.stat().st_mode)
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    replace_file(main_cf, text.encode("utf-8"), durable=True, mode=mode)
