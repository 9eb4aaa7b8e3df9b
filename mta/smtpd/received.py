"""The Received header smtpd prepends to each message (RFC 5321 section 4.4).

    Received: from HELO (NAME [ADDRESS])
        by MYHOSTNAME (MAIL_NAME) with PROTOCOL id QUEUEID
        for <RECIPIENT>; DATE

(continuation lines start with a TAB). `for <RECIPIENT>` appears only when the message has
exactly one recipient, as Postfix does, so a header never lists who else got a copy. The queue
hands out the id inside the commit transaction, so the header carries the queue's placeholder,
which the queue replaces with the id it gives the message.
PROTOCOL is SMTP, ESMTP, or with TLS/AUTH ESMTPS, ESMTPA, ESMTPSA (RFC 3848), and with
SMTPUTF8 UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA (RFC 6531 section 3.7.3).

Trust: the HELO name and recipient come from the client but were checked by the protocol engine
(no control characters, bounded length), so they cannot break the header's lines.
"""

from __future__ import annotations

import ipaddress
import time
from datetime import datetime
from email.utils import format_datetime

from mta.queue import QUEUE_ID_PLACEHOLDER

RECEIVED_HEADER_LIMIT = 2048
"""Octets the header can take: HELO (512) + recipient (256) + host names + fixed text."""


def protocol_name(helo_verb: str | None, smtputf8: bool, tls: bool, authenticated: bool) -> str:
    """The `with` keyword of the Received header (and the proto= of log lines)."""
    if helo_verb != "EHLO":
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def address_literal(address: str) -> str:
    """An IP address as it appears inside [] in a header: IPv6 gets the "IPv6:" tag."""
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return address
    return f"IPv6:{address}" if version == 6 else address


_date_cache: tuple[int, str] = (-1, "")
"""(second, its date as the header shows it): the date changes once a second, not per message."""


def current_header_date() -> str:
    """Now in local time as RFC 5322 formats it, formatted at most once a second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second).astimezone()))
    return _date_cache[1]


def received_header(
    *,
    helo: str | None,
    client_name: str,
    client_literal: str,
    myhostname: str,
    mail_name: str,
    protocol: str,
    recipients: list[str],
    date: str,
) -> bytes:
    """The header; client_literal is address_literal(client's address), date RFC 5322's."""
    recipient = f"\r\n\tfor <{recipients[0]}>" if len(recipients) == 1 else ""
    text = (
        f"Received: from {helo or client_name} ({client_name} [{client_literal}])"
        f"\r\n\tby {myhostname} ({mail_name}) with {protocol} id "
    )
    rest = f"{recipient}; {date}\r\n"
    return text.encode("utf-8") + QUEUE_ID_PLACEHOLDER + rest.encode("utf-8")
