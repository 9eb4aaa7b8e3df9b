"""Postfix's per-recipient status log line, shared by qmgr and the delivery agents.

    QUEUEID: to=<rcpt>, orig_to=<orig>, relay=RELAY, delay=D, delays=a/b/c/d, dsn=X.Y.Z,
             status=sent (TEXT)

delay is the time since arrival; delays splits it into a (before qmgr), b (in qmgr), c
(connection setup) and d (transmission). Times print like Postfix's log_adhoc: whole seconds
from 10 s up, one decimal from 1 s, two below, trailing zeros dropped, so pflogsumm and
operators' greps read our lines as Postfix's.
"""

from __future__ import annotations


def format_delay(seconds: float) -> str:
    if seconds >= 10:
        return str(int(seconds + 0.5))
    text = f"{max(seconds, 0.0):.1f}" if seconds >= 1 else f"{max(seconds, 0.0):.2f}"
    return text.rstrip("0").rstrip(".") or "0"


def status_line(
    queue_id: str,
    address: str,
    orig_address: str,
    relay: str,
    delays: tuple[float, float, float, float],
    dsn: str,
    status: str,
    text: str,
) -> str:
    """One recipient's line; status is sent, deferred or bounced, text goes in parentheses."""
    orig = f"orig_to=<{orig_address}>, " if orig_address and orig_address != address else ""
    return (
        f"{queue_id}: to=<{address}>, {orig}relay={relay}, delay={format_delay(sum(delays))}, "
        f"delays={'/'.join(format_delay(part) for part in delays)}, dsn={dsn}, "
        f"status={status} ({text})"
    )
