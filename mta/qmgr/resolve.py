"""Recipient resolution for qmgr: which transport and next hop delivers an address.

qmgr asks mta.rewrite's resolver (trivial-rewrite(8)): the address class (local, virtual
alias, virtual mailbox, relay, default), its *_transport, relayhost, and transport_maps. A
virtual alias domain address that was not aliased goes to the error transport, which bounces
it with "User unknown in virtual alias table". When a table cannot answer, the recipient goes
to the `retry` transport, which has no agent, so it is deferred and tried again later, as
Postfix's qmgr defers on an address resolver failure; the reason is logged once per address.
The relay and smtp agents come with issue 6: until then a transport whose socket does not
exist defers its recipients with "4.3.0 mail transport unavailable", as Postfix does.

Parameters: those of mta.rewrite.resolve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mta.config.maincf import Settings
from mta.rewrite import Resolver as RewriteResolver
from mta.rewrite import TemporaryFailure

log = logging.getLogger("mta.qmgr")

RESOLVER_FAILURE_TRANSPORT = "retry"


@dataclass(frozen=True, slots=True)
class Resolver:
    routes: RewriteResolver

    @classmethod
    def from_settings(cls, settings: Settings) -> Resolver:
        return cls(RewriteResolver.from_settings(settings))

    def resolve(self, address: str) -> tuple[str, str]:
        """(transport, nexthop) for a recipient address."""
        route = self.routes.route(address)
        if isinstance(route, TemporaryFailure):
            log.warning("warning: %s", route.reason)
            return RESOLVER_FAILURE_TRANSPORT, "address resolver failure"
        return route.transport, route.nexthop
