"""smtp and lmtp: deliver mail to the next hop over SMTP or LMTP (Postfix's smtp(8)/lmtp(8)).

Runs as the `smtp` and `relay` services (`python -m mta.agents.smtp`, smtp_* parameters) and
as `lmtp` (`python -m mta.agents.lmtp`, lmtp_* parameters). One event loop serves many
deliveries at once (mta.agents.server's async mode); each request is one message and the
recipients qmgr grouped for one next hop (up to <transport>_destination_recipient_limit).

For each request: read the envelope and content from the queue; take a cached session for
(service, next hop) if one passes its checks (mta.smtp.cache); else find the hosts (in a
thread: DNS through mta.dns.NextHopResolver, the TLS policy through smtp_tls_policy_maps) and
try them in order: the next address or MX host after a connection failure, a 4xx or 5xx
greeting, a 4xx to EHLO/MAIL or a TLS failure, with at most smtp_mx_session_limit sessions.
Recipients refused with a 4xx are tried on the next host too; 2xx is sent, 5xx bounced, and
what is left when the hosts run out is deferred with the last reason. A permanent DNS failure
(NXDOMAIN, null MX) bounces, a temporary one defers.

Next hops: smtp as Postfix writes them (`domain`, `domain:port`, `[host]`, `[host]:port`,
addresses); lmtp: `unix:/path` (a relative path is under queue_directory), `inet:host`,
`inet:host:port`, `[host]:port`, `host:port` (no MX lookup for LMTP; default port 24).

Logs: Postfix's status line per recipient (by mta.agents.server), e.g.
    QUEUEID: to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, delay=0.2,
             delays=0/0/0.1/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)
and, with *_tls_loglevel >= 1, "Verified TLS connection established to host[addr]:port: ...".
A recipient whose next hop took the DSN request (NOTIFY passed to a server offering DSN) is
handed off as DSN_PASSED_ON; otherwise smtp reports RELAYED and lmtp DELIVERED.

Security: the agent trusts qmgr's requests and the queue; everything from the network is
bounded by mta.smtp. It never sends mail anywhere but the resolved next hop.
Parameters: those of mta.smtp.settings, mta.smtp.tls, mta.dns.resolver; myhostname;
queue parameters (to read mail).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mta.agents.server import AsyncCleanup, AsyncDeliver, agent_main
from mta.config.maincf import Settings
from mta.dns import nexthop as nexthop_syntax
from mta.dns.resolver import Destination, DnsFailure, NextHopResolver
from mta.proto.delivery import (
    DeliveryRequest,
    Handoff,
    Outcome,
    RecipientOutcome,
    RequestRecipient,
)
from mta.queue import MailQueue, QueueError, QueueSettings, UnknownQueueIdError
from mta.queue.message import BodyType, DsnRet, Notify, QueuedMessage
from mta.smtp import dane
from mta.smtp.cache import SessionCache
from mta.smtp.session import (
    NO_TLS,
    Endpoint,
    Envelope,
    EnvelopeRecipient,
    RecipientResult,
    Session,
    SessionError,
    TlsPlan,
    open_session,
)
from mta.smtp.settings import ClientSettings, Protocol
from mta.smtp.tls import (
    Level,
    TlsContexts,
    TlsPolicies,
    TlsPolicy,
    TlsPolicyError,
    expand_patterns,
)

NOTIFY_WORDS = ((Notify.SUCCESS, "SUCCESS"), (Notify.FAILURE, "FAILURE"), (Notify.DELAY, "DELAY"))
RET_WORDS = {DsnRet.FULL: "FULL", DsnRet.HDRS: "HDRS"}


@dataclass(frozen=True, slots=True)
class Route:
    """Where a next hop leads: endpoints to try (with the DNSSEC state of the lookups), the
    name certificates are checked against, and the TLS policy."""

    destinations: tuple[Destination, ...]
    nexthop_domain: str
    policy: TlsPolicy
    unix: bool = False


@dataclass
class _Attempt:
    """The state of one request across hosts."""

    request: DeliveryRequest
    pending: list[RequestRecipient]
    outcomes: dict[int, RecipientOutcome] = field(default_factory=dict)
    deferred: dict[int, RecipientOutcome] = field(default_factory=dict)
    sessions: int = 0
    last_error: SessionError | None = None
    last_relay: str = "none"
    """host[address]:port of the session last_error came from; none before any connection."""


def _notify(value: int) -> tuple[str, ...]:
    flags = Notify(value)
    if flags & Notify.NEVER:
        return ("NEVER",)
    return tuple(word for flag, word in NOTIFY_WORDS if flags & flag)


class SmtpAgent:
    """Delivers requests over SMTP or LMTP; one per process."""

    def __init__(
        self,
        service: str,
        client: ClientSettings,
        queue: MailQueue,
        resolver: NextHopResolver,
        policies: TlsPolicies,
        contexts: TlsContexts,
        myhostname: str,
        queue_directory: Path,
    ) -> None:
        self.service = service
        self.client = client
        self.queue = queue
        self.resolver = resolver
        self.policies = policies
        self.contexts = contexts
        self.myhostname = myhostname
        self.queue_directory = queue_directory
        self.lmtp = client.protocol is Protocol.LMTP
        self.cache = SessionCache(client.reuse)
        self.log = logging.getLogger(f"mta.{service}")

    @classmethod
    def from_settings(
        cls, settings: Settings, service: str, protocol: Protocol, queue: MailQueue | None = None
    ) -> SmtpAgent:
        """The agent as main.cf says; `queue` is an already open queue (LMDB opens an
        environment once per process)."""
        client = ClientSettings.from_settings(settings, protocol)
        if queue is None:
            queue = MailQueue(
                QueueSettings.from_parameters(settings.queue_directory, settings.get), create=False
            )
        return cls(
            service,
            client,
            queue,
            NextHopResolver.from_settings(settings),
            TlsPolicies.from_settings(settings, protocol.value),
            TlsContexts.from_settings(settings, protocol.value),
            settings.get("myhostname").strip(),
            settings.queue_directory,
        )

    async def aclose(self) -> None:
        self.cache.close()
        await asyncio.sleep(0)  # let the transports write their QUIT before the loop ends
        self.queue.close()

    # -- routes --------------------------------------------------------------------------------

    def route(self, nexthop: str) -> Route | DnsFailure | TlsPolicyError:
        """Hosts and TLS policy for a next hop; blocks on DNS and tables (run in a thread)."""
        policy = self.policies.lookup(nexthop)
        if isinstance(policy, TlsPolicyError):
            return policy
        text = nexthop.strip()
        if self.lmtp:
            if text.startswith("unix:"):
                path = Path(text[5:])
                if not path.is_absolute():
                    path = self.queue_directory / path
                destination = Destination(0, self.myhostname, (str(path),), 0)
                return Route((destination,), self.myhostname, policy, unix=True)
            text = text.removeprefix("inet:")
            if not text.startswith("["):  # LMTP does no MX lookup
                host, colon, port = text.rpartition(":")
                text = f"[{host}]:{port}" if colon and port.isdigit() else f"[{text}]"
        resolved = self.resolver.resolve(text, self.client.protocol.default_port)
        if isinstance(resolved, DnsFailure):
            return resolved
        # The resolver parsed this same text without error, so this parse cannot fail.
        return Route(resolved, nexthop_syntax.parse_nexthop(text).host, policy)

    # -- delivery ------------------------------------------------------------------------------

    async def deliver(self, request: DeliveryRequest) -> list[RecipientOutcome]:
        try:
            message = self.queue.get(request.queue_id)
            content = self.queue.content(request.queue_id)
        except UnknownQueueIdError:
            return self._all(request, Outcome.DEFERRED, "4.3.0", "message no longer in the queue")
        except QueueError as error:
            return self._all(request, Outcome.DEFERRED, "4.3.0", f"cannot read the queue: {error}")
        attempt = _Attempt(request, list(request.recipients))
        key = (self.service, request.nexthop)
        session = await self.cache.take(key)
        if session is not None:
            await self._transaction(attempt, session, message, content, key, reused=True)
        broken = attempt.last_error is not None and not attempt.last_error.try_next
        if attempt.pending and not broken:  # never twice after "may be sent more than once"
            await self._try_hosts(attempt, message, content, key)
        for recipient in attempt.pending:
            attempt.outcomes[recipient.index] = attempt.deferred.get(
                recipient.index
            ) or self._failure_outcome(recipient, attempt.last_error, attempt.last_relay)
        return [attempt.outcomes[r.index] for r in request.recipients]

    def _failure_outcome(
        self, recipient: RequestRecipient, error: SessionError | None, relay: str
    ) -> RecipientOutcome:
        if error is None:
            return RecipientOutcome(
                recipient.index,
                Outcome.DEFERRED,
                "4.4.1",
                "none",
                "no host could be tried",
                site_failure=True,
            )
        if error.permanent:
            return RecipientOutcome(recipient.index, Outcome.BOUNCED, error.dsn, relay, error.text)
        # No session took this recipient: the destination failed, not the recipient.
        return RecipientOutcome(
            recipient.index, Outcome.DEFERRED, error.dsn, relay, error.text, site_failure=True
        )

    async def _try_hosts(
        self, attempt: _Attempt, message: QueuedMessage, content: bytes, key: tuple[str, str]
    ) -> None:
        route = await asyncio.to_thread(self.route, attempt.request.nexthop)
        if isinstance(route, TlsPolicyError):
            attempt.last_error, attempt.last_relay = SessionError("4.7.5", route.text), "none"
            return
        if isinstance(route, DnsFailure):
            attempt.last_error = SessionError(route.status, route.text)
            attempt.last_relay = "none"
            return
        for destination in route.destinations:
            for address in destination.addresses:
                if not attempt.pending or attempt.sessions >= self.client.mx_session_limit:
                    return
                endpoint = Endpoint(destination.host, address, destination.port, route.unix)
                session = await self._connect(attempt, endpoint, destination, route)
                if session is None:
                    if attempt.last_error is not None and not attempt.last_error.try_next:
                        return
                    continue
                await self._transaction(attempt, session, message, content, key, reused=False)
                if attempt.last_error is not None and not attempt.last_error.try_next:
                    return

    async def _connect(
        self, attempt: _Attempt, endpoint: Endpoint, destination: Destination, route: Route
    ) -> Session | None:
        try:
            plan = await self._tls_plan(endpoint, destination, route)
            try:
                session = await open_session(endpoint, self.client, plan, self.log)
            except SessionError as error:
                if not error.plaintext_retry:
                    raise
                attempt.sessions += 1
                self.log.info("%s; trying again without TLS", error.text)
                session = await open_session(endpoint, self.client, NO_TLS, self.log)
        except SessionError as error:
            if error.connected:
                attempt.sessions += 1
            attempt.last_error = error
            attempt.last_relay = endpoint.relay if error.connected else "none"
            if error.permanent and not error.try_next:
                for recipient in attempt.pending:
                    attempt.outcomes[recipient.index] = RecipientOutcome(
                        recipient.index, Outcome.BOUNCED, error.dsn, endpoint.relay, error.text
                    )
                attempt.pending = []
            return None
        attempt.sessions += 1
        return session

    async def _tls_plan(
        self, endpoint: Endpoint, destination: Destination, route: Route
    ) -> TlsPlan:
        policy = route.policy
        contexts = self.contexts
        level = policy.level
        if level is Level.NONE:
            return NO_TLS
        # dane's context verifies nothing (dane_verify checks the chain) but keeps protocols=.
        context = contexts.context(policy)
        if level in (Level.MAY, Level.ENCRYPT):
            return TlsPlan(context, level is Level.ENCRYPT, loglevel=contexts.loglevel)
        if level.verified:
            patterns = contexts.patterns(policy)
            expanded = tuple(expand_patterns(patterns, endpoint.host, route.nexthop_domain))
            return TlsPlan(context, True, expanded, loglevel=contexts.loglevel)
        may = TlsPlan(context, loglevel=contexts.loglevel)
        # dane, dane-only (RFC 7672 2.2): only DNSSEC-validated MX/address records lead to TLSA.
        dane_only = level is Level.DANE_ONLY
        if not destination.secure:
            if dane_only:
                raise SessionError(
                    "4.7.5", f"DANE required, but the DNS records of {endpoint.host} are insecure"
                )
            return may
        tlsa = await asyncio.to_thread(
            dane.lookup_tlsa, self.resolver, endpoint.host, endpoint.port
        )
        effective = tlsa.effective_level
        if effective == "defer":
            raise SessionError("4.7.5", f"{tlsa.temporary_failure} (DANE)")
        if effective != "dane" and dane_only:
            raise SessionError(
                "4.7.5", f"DANE required, but no usable TLSA records for {endpoint.host}"
            )
        if effective == "may":
            return may
        if effective == "encrypt":  # records, none usable: TLS without authentication
            return TlsPlan(context, True, loglevel=contexts.loglevel)
        records = tlsa.usable
        names = tlsa.names or (endpoint.host,)

        def check(ssl_object: ssl.SSLObject) -> str | None:
            return dane.dane_verify(
                dane.peer_chain(ssl_object), records, names, depth_limit=contexts.verify_depth
            )

        return TlsPlan(
            context,
            True,
            check=check,
            loglevel=contexts.loglevel,
            server_name=tlsa.base_domain,
        )

    def _envelope(self, message: QueuedMessage, recipients: Sequence[RequestRecipient]) -> Envelope:
        return Envelope(
            sender=message.sender,
            recipients=tuple(
                EnvelopeRecipient(
                    r.address,
                    _notify(r.notify),
                    r.orcpt or f"rfc822;{r.orig_address or r.address}",
                )
                for r in recipients
            ),
            size=message.size,
            eight_bit_mime=message.body_type is BodyType.EIGHT_BIT_MIME,
            smtputf8=message.smtputf8,
            ret=RET_WORDS.get(message.dsn_ret, ""),
            envid=message.envid,
        )

    async def _transaction(
        self,
        attempt: _Attempt,
        session: Session,
        message: QueuedMessage,
        content: bytes,
        key: tuple[str, str],
        *,
        reused: bool,
    ) -> None:
        recipients = attempt.pending
        envelope = self._envelope(message, recipients)
        relay = session.endpoint.relay
        try:
            results: Sequence[RecipientResult | None] = await session.deliver(envelope, content)
        except SessionError as error:
            # A cached session that broke is no failure of the destination: a new one is tried.
            attempt.last_error = None if reused and error.try_next else error
            attempt.last_relay = relay
            session.abort()
            if error.results:  # what the server had answered before the session broke
                self._record(attempt, recipients, error.results, relay, session)
            return
        self._record(attempt, recipients, results, relay, session)
        if session.alive:
            self.cache.give(key, session)
        else:
            session.close()

    def _record(
        self,
        attempt: _Attempt,
        recipients: Sequence[RequestRecipient],
        results: Sequence[RecipientResult | None],
        relay: str,
        session: Session,
    ) -> None:
        """Sent and bounced recipients are done; deferred ones, and those without a result,
        stay pending for the next host."""
        still: list[RequestRecipient] = []
        for recipient, result in zip(recipients, results, strict=True):
            if result is None:
                still.append(recipient)
                continue
            outcome = self._outcome(recipient, result, relay, session)
            if outcome.outcome is Outcome.DEFERRED:
                attempt.deferred[recipient.index] = outcome
                still.append(recipient)
            else:
                attempt.outcomes[recipient.index] = outcome
        attempt.pending = still

    def _outcome(
        self, recipient: RequestRecipient, result: RecipientResult, relay: str, session: Session
    ) -> RecipientOutcome:
        if result.success:
            passed = session.dsn_offered and bool(recipient.notify)
            if passed:
                handoff = Handoff.DSN_PASSED_ON
            else:
                handoff = Handoff.DELIVERED if self.lmtp else Handoff.RELAYED
            return RecipientOutcome(
                recipient.index, Outcome.SENT, result.dsn, relay, result.text, handoff
            )
        outcome = Outcome.BOUNCED if result.permanent else Outcome.DEFERRED
        return RecipientOutcome(recipient.index, outcome, result.dsn, relay, result.text)

    @staticmethod
    def _all(
        request: DeliveryRequest, outcome: Outcome, dsn: str, text: str
    ) -> list[RecipientOutcome]:
        return [RecipientOutcome(r.index, outcome, dsn, "none", text) for r in request.recipients]


def main(protocol: Protocol, argv: list[str] | None = None) -> int:
    def make(settings: Settings, service: str) -> tuple[AsyncDeliver, AsyncCleanup]:
        agent = SmtpAgent.from_settings(settings, service, protocol)
        return agent.deliver, agent.aclose

    return agent_main(protocol.value, make, argv)


if __name__ == "__main__":
    sys.exit(main(Protocol.SMTP))
