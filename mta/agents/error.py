"""error: the error and retry delivery agents (Postfix's error(8) and retry(8)).

Under any service name but `retry` it bounces every recipient of a request, with the next hop
as the reason, as Postfix does for `transport_maps` entries such as
`example.com error:5.1.1 mail for example.com is not accepted`:

    QUEUEID: to=<rcpt>, relay=none, delay=0.01, delays=0/0/0/0, dsn=5.1.1,
             status=bounced (mail for example.com is not accepted)

Run as the `retry` service (master.cf: `retry unix - - n - - error`) it defers them instead,
and qmgr tries again after its backoff; qmgr also sends there the recipients whose route a
lookup table could not answer. The reason may start with an RFC 3463 detail code (`5.1.1 `);
as in Postfix, error turns a 4.x.y code into 5.x.y and retry a 5.x.y code into 4.x.y, and
without a code the status is 5.0.0 or 4.0.0.

Security: reads no message content and writes nothing but log lines. Parameters: none.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from mta.agents.server import Deliver, agent_main
from mta.config.maincf import Settings
from mta.proto.delivery import DeliveryRequest, Outcome, RecipientOutcome

DEFAULT_REASON = "unknown mail transport error"
RETRY_SERVICE = "retry"
_DETAIL_CODE = re.compile(r"([245])\.(\d{1,3}\.\d{1,3})(?:\s+|$)")


def reason_status(reason: str, outcome: Outcome) -> tuple[str, str]:
    """(dsn, text) for a next hop used as a reason, its class set by what the agent does."""
    klass = "5" if outcome is Outcome.BOUNCED else "4"
    match = _DETAIL_CODE.match(reason)
    if match is None:
        return f"{klass}.0.0", reason or DEFAULT_REASON
    text = reason[match.end() :] or DEFAULT_REASON
    return f"{klass}.{match.group(2)}", text


def deliver_as(outcome: Outcome) -> Deliver:
    def deliver(request: DeliveryRequest) -> list[RecipientOutcome]:
        dsn, text = reason_status(request.nexthop, outcome)
        return [
            RecipientOutcome(recipient.index, outcome, dsn, "none", text)
            for recipient in request.recipients
        ]

    return deliver


def make_deliver(_settings: Settings, service: str) -> tuple[Deliver, Callable[[], None]]:
    outcome = Outcome.DEFERRED if service == RETRY_SERVICE else Outcome.BOUNCED
    return deliver_as(outcome), lambda: None


if __name__ == "__main__":
    sys.exit(agent_main("error", make_deliver, None))
