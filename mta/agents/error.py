"""error: the error delivery agent (Postfix's error(8)).

Bounces every recipient of a request with dsn 5.0.0 and the next hop as the reason, as
Postfix does for `transport_maps` entries such as `example.com error:mail for example.com is
not accepted`:

    QUEUEID: to=<rcpt>, relay=none, delay=0.01, delays=0/0/0/0, dsn=5.0.0,
             status=bounced (mail for example.com is not accepted)

qmgr then returns the mail to its sender with a delivery status notification. (Postfix's
`retry` variant, which defers instead, is not implemented yet.)

Security: reads no message content and writes nothing but log lines. Parameters: none.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from mta.agents.server import Deliver, agent_main
from mta.config.maincf import Settings
from mta.proto.delivery import DeliveryRequest, Outcome, RecipientOutcome

DEFAULT_REASON = "unknown mail transport error"


def deliver(request: DeliveryRequest) -> list[RecipientOutcome]:
    text = request.nexthop or DEFAULT_REASON
    return [
        RecipientOutcome(recipient.index, Outcome.BOUNCED, "5.0.0", "none", text)
        for recipient in request.recipients
    ]


def make_deliver(_settings: Settings, _service: str) -> tuple[Deliver, Callable[[], None]]:
    return deliver, lambda: None


if __name__ == "__main__":
    sys.exit(agent_main("error", make_deliver, None))
