"""discard: the discard delivery agent (Postfix's discard(8)).

Reports every recipient of a request as delivered without delivering anything, with dsn 2.0.0,
relay=none and the next hop as the text, as Postfix logs it:

    QUEUEID: to=<rcpt>, relay=none, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (NEXTHOP)

With `default_transport = discard` this makes the whole MTA a sink for benchmarks. The next
hop is the recipient's domain unless the transport spec names one (`discard:text`).

Security: reads no message content and writes nothing but log lines. Parameters: none of its
own (see mta.agents.server for --max-use and --max-idle).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from mta.agents.server import Deliver, agent_main
from mta.config.maincf import Settings
from mta.proto.delivery import DeliveryRequest, Outcome, RecipientOutcome


def deliver(request: DeliveryRequest) -> list[RecipientOutcome]:
    text = request.nexthop or "discarded"
    return [
        RecipientOutcome(recipient.index, Outcome.SENT, "2.0.0", "none", text)
        for recipient in request.recipients
    ]


def make_deliver(_settings: Settings, _service: str) -> tuple[Deliver, Callable[[], None]]:
    return deliver, lambda: None


if __name__ == "__main__":
    sys.exit(agent_main("discard", make_deliver, None))
