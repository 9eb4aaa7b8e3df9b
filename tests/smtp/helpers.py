"""Shared pieces of the SMTP/LMTP client tests: client settings with short time limits (a
stalled server costs a second, not minutes), envelopes, running a coroutine, and an
in-process agent on a real queue (AgentHarness)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from mta.agents.smtp import SmtpAgent
from mta.config.maincf import settings_from_text
from mta.proto.delivery import DeliveryRequest, RecipientOutcome, RequestRecipient
from mta.queue import MailQueue, QueueSettings
from mta.queue.message import Message, Recipient
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


def timeouts_main_cf(seconds: float) -> str:
    """main.cf lines setting every smtp_*_timeout and lmtp_*_timeout to `seconds`."""
    steps = (
        "connect_timeout",
        "mail_timeout",
        "rcpt_timeout",
        "data_init_timeout",
        "data_xfer_timeout",
        "data_done_timeout",
        "starttls_timeout",
        "rset_timeout",
    )
    lines = [f"{prefix}_{name} = {seconds}s\n" for prefix in ("smtp", "lmtp") for name in steps]
    return "".join(lines) + f"smtp_helo_timeout = {seconds}s\nlmtp_lhlo_timeout = {seconds}s\n"


SHORT_MAIN_CF = timeouts_main_cf(2)


def dns_main_cf(port: int) -> str:
    """main.cf lines sending the client's DNS queries to a test name server on 127.0.0.1:port,
    IPv4 only (the test servers listen on 127.0.0.x)."""
    return (
        f"smtp_dns_resolver_address = 127.0.0.1\nsmtp_dns_resolver_port = {port}\n"
        "inet_protocols = ipv4\n"
    )


class AgentHarness:
    """An in-process smtp or lmtp agent on a real queue in a temp folder: enqueue a message,
    build the request qmgr would send, and await the agent's outcomes."""

    def __init__(
        self, directory: Path, main_cf: str = "", protocol: Protocol = Protocol.SMTP
    ) -> None:
        self.queue_directory = directory / "q"
        text = (
            f"queue_directory = {self.queue_directory}\nmyhostname = client.test\n"
            f"{SHORT_MAIN_CF}{main_cf}"
        )
        self.settings = settings_from_text(text, "main.cf")
        self.queue = MailQueue(QueueSettings(self.queue_directory))
        self.agent = SmtpAgent.from_settings(self.settings, protocol.value, protocol, self.queue)
        self._ids = itertools.count(1)

    def request(
        self,
        nexthop: str,
        *recipients: str | RequestRecipient,
        content: bytes = CONTENT,
        **message: Any,
    ) -> DeliveryRequest:
        listed = [
            r if isinstance(r, RequestRecipient) else RequestRecipient(index, r)
            for index, r in enumerate(recipients or ("b@rcpt.test",))
        ]
        (queue_id,) = self.queue.enqueue(
            [
                Message(
                    "a@sender.test",
                    tuple(Recipient(r.address) for r in listed),
                    content,
                    **message,
                )
            ]
        )
        now = time.time()
        return DeliveryRequest(
            next(self._ids), queue_id, nexthop, "a@sender.test", now, now, tuple(listed)
        )

    async def deliver(self, request: DeliveryRequest) -> list[RecipientOutcome]:
        return await self.agent.deliver(request)

    def run(self, *requests: DeliveryRequest, pause: float = 0.0) -> list[list[RecipientOutcome]]:
        """Deliver the requests one after the other in one event loop, then close the agent."""

        async def main() -> list[list[RecipientOutcome]]:
            results = []
            try:
                for request in requests:
                    results.append(await self.deliver(request))
                    if pause:
                        await asyncio.sleep(pause)
            finally:
                self.agent.cache.close()
                await asyncio.sleep(0.05)  # let QUIT reach the servers
            return results

        return asyncio.run(main())

    def close(self) -> None:
        self.queue.close()
