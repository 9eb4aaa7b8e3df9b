"""A delivery agent for the bounce tests: `python -m tests.bounce.handoff_agent` (the agents'
usual options). It reports every recipient sent, with the handoff its next hop names:
"relayed" -> Handoff.RELAYED, "passed" -> Handoff.DSN_PASSED_ON, anything else DELIVERED, as
the smtp agent does for next hops without DSN or with it. Real qmgr <-> agent protocol over
the real socket; only the remote server is left out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from mta.agents.server import Deliver, agent_main
from mta.config.maincf import Settings
from mta.proto.delivery import DeliveryRequest, Handoff, Outcome, RecipientOutcome

HANDOFFS = {"relayed": Handoff.RELAYED, "passed": Handoff.DSN_PASSED_ON}


def deliver(request: DeliveryRequest) -> list[RecipientOutcome]:
    handoff = HANDOFFS.get(request.nexthop, Handoff.DELIVERED)
    relay = f"mx.{request.nexthop}.test[127.0.0.1]:25"
    return [
        RecipientOutcome(r.index, Outcome.SENT, "2.0.0", relay, "250 2.0.0 Ok: queued", handoff)
        for r in request.recipients
    ]


def make_deliver(_settings: Settings, _service: str) -> tuple[Deliver, Callable[[], None]]:
    return deliver, lambda: None


if __name__ == "__main__":
    sys.exit(agent_main("handoff", make_deliver, None))
