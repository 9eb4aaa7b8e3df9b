"""Recipient resolution for qmgr: which transport and next hop delivers an address.

qmgr asks mta.rewrite's resolver (trivial-rewrite(8)): the address class (local, virtual
alias, virtual mailbox, relay, default), its *_transport, relayhost, and transport_maps. A
virtual alias domain address that was not aliased goes to the error transport, which bounces
it with "User unknown in virtual alias table". When a table cannot answer, the recipient goes
to the `retry` transport (mta.agents.error as `retry` in the built-in master.cf), which
defers it with "address resolver failure", and it is tried again later, as Postfix's qmgr
defers on an address resolver failure; the reason is logged once per address.
The smtp, relay and lmtp transports are served by mta.agents.smtp and mta.agents.lmtp (in
the built-in master.cf); qmgr hands each of them the recipients of one message that share a
next hop, up to <transport>_destination_recipient_limit per request. A transport whose socket
does not exist defers its recipients with "4.3.0 mail transport unavailable", as Postfix does.

A message with a content filter (the envelope extra `filter`, transport:nexthop, from a FILTER
action or smtpd's content_filter) has all its recipients go to that transport and nexthop, or
the recipient's domain when the nexthop is empty, as Postfix's qmgr does; a malformed filter
is logged as a warning and ignored, and the recipients take their normal routes.

Answers are kept for RESOLVE_CACHE_LIFETIME seconds, at most RESOLVE_CACHE_SIZE of them, as
Postfix's resolve client keeps its last answer: mail to one address comes in runs, and a
table edit still takes effect within seconds. Temporary failures are never kept.

Parameters: those of mta.rewrite.resolve.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from mta.config.maincf import Settings
from mta.queue import FILTER_EXTRA, QueuedMessage, split_filter
from mta.rewrite import Resolver as RewriteResolver
from mta.rewrite import TemporaryFailure

log = logging.getLogger("mta.qmgr")

RESOLVER_FAILURE_TRANSPORT = "retry"
RESOLVE_CACHE_SIZE = 1000
RESOLVE_CACHE_LIFETIME = 5.0


class Resolver:
    def __init__(
        self, routes: RewriteResolver, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.routes = routes
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, tuple[str, str]]] = OrderedDict()
        """address -> (when the answer expires, (transport, nexthop)), oldest first."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Resolver:
        return cls(RewriteResolver.from_settings(settings))

    def resolve(self, address: str) -> tuple[str, str]:
        """(transport, nexthop) for a recipient address."""
        now = self._clock()
        cached = self._cache.get(address)
        if cached is not None and cached[0] > now:
            return cached[1]
        route = self.routes.route(address)
        if isinstance(route, TemporaryFailure):
            log.warning("warning: %s", route.reason)
            return RESOLVER_FAILURE_TRANSPORT, "address resolver failure"
        answer = (route.transport, route.nexthop)
        self._cache[address] = (now + RESOLVE_CACHE_LIFETIME, answer)
        self._cache.move_to_end(address)
        if len(self._cache) > RESOLVE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return answer

    def router(self, message: QueuedMessage) -> Callable[[str], tuple[str, str]]:
        """resolve() for message's recipients, or its content filter's route when it has one."""
        value = message.extras.get(FILTER_EXTRA)
        if value is None:
            return self.resolve
        content_filter = split_filter(value)
        if content_filter is None:
            log.warning(
                "warning: %s: ignoring malformed content filter: %s", message.queue_id, value
            )
            return self.resolve
        transport, nexthop = content_filter
        if nexthop:
            return lambda _address: content_filter
        return lambda address: (transport, address.rpartition("@")[2])
