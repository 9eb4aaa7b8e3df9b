"""Per-session command counts for Postfix's disconnect log line.

    disconnect from unknown[192.0.2.1] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6

Each command appears with the number that succeeded, and "/total" when some failed; DATA and
BDAT count as successful only when their message was accepted. Order follows Postfix's
command table, so operators' greps and pflogsumm see the same line.
"""

from __future__ import annotations

COMMAND_ORDER = (
    "helo",
    "ehlo",
    "starttls",
    "auth",
    "mail",
    "rcpt",
    "data",
    "bdat",
    "rset",
    "noop",
    "vrfy",
    "etrn",
    "quit",
    "unknown",
)
_POSITION = {name: position for position, name in enumerate(COMMAND_ORDER)}


class CommandStats:
    __slots__ = ("_counts", "_ok", "_total")

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}
        self._ok = 0
        self._total = 0

    def record(self, command: str | None, ok: bool) -> None:
        """Count one command; None counts it only in the total (a command we cannot name)."""
        self._total += 1
        self._ok += ok
        if command is not None:
            counts = self._counts.setdefault(command, [0, 0])
            counts[0] += ok
            counts[1] += 1

    def summary(self) -> str:
        parts = [
            f"{name}={_fraction(*self._counts[name])}"
            for name in sorted(self._counts, key=lambda name: _POSITION.get(name, len(_POSITION)))
        ]
        parts.append(f"commands={_fraction(self._ok, self._total)}")
        return " ".join(parts)


def _fraction(ok: int, total: int) -> str:
    return str(ok) if ok == total else f"{ok}/{total}"
