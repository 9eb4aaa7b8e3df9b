"""Shared pieces of the SMTP/LMTP client tests: client settings with short time limits (a
stalled server costs a second, not minutes), envelopes, and running a coroutine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from mta.smtp.session import (
    NO_TLS,
    Endpoint,
    Envelope,
    EnvelopeRecipient,
    RecipientResult,
    Session,
    TlsPlan,
    open_session,
)
from mta.smtp.settings import ClientSettings, Protocol, Timeouts

T = TypeVar("T")
SHORT = Timeouts(
    connect=2, helo=2, mail=2, rcpt=2, data_init=2, data_xfer=2, data_done=2, starttls=2, rset=1
)
LOG = logging.getLogger("mta.smtp.test")
CONTENT = b"Subject: test\r\nFrom: a@sender.test\r\n\r\nbody line\r\n"


def client(protocol: Protocol = Protocol.SMTP, **changes: Any) -> ClientSettings:
    settings = ClientSettings(protocol=protocol, helo_name="client.test", timeouts=SHORT)
    return replace(settings, **changes)


def envelope(*recipients: str, content: bytes = CONTENT, **changes: Any) -> Envelope:
    made = Envelope(
        "a@sender.test",
        tuple(EnvelopeRecipient(address) for address in recipients or ("b@rcpt.test",)),
        len(content),
    )
    return replace(made, **changes)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def session_to(
    port: int, settings: ClientSettings | None = None, plan: TlsPlan = NO_TLS, host: str = "mx"
) -> Session:
    endpoint = Endpoint(host, "127.0.0.1", port)
    return await open_session(endpoint, settings or client(), plan, LOG)


async def deliver_once(
    port: int,
    mail: Envelope,
    content: bytes = CONTENT,
    settings: ClientSettings | None = None,
    plan: TlsPlan = NO_TLS,
) -> list[RecipientResult]:
    session = await session_to(port, settings, plan)
    try:
        return await session.deliver(mail, content)
    finally:
        session.quit()
