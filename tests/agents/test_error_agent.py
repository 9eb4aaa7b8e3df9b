"""The error and retry agents: bounce or defer with the next hop as the reason and its RFC 3463
detail code, the class forced to 5 (error) or 4 (retry) as Postfix's error(8) does."""

from __future__ import annotations

import pytest

from mta.agents.error import RETRY_SERVICE, make_deliver, reason_status
from mta.config.maincf import Settings
from mta.proto.delivery import DeliveryRequest, Outcome, RecipientOutcome, RequestRecipient


@pytest.mark.parametrize(
    ("reason", "outcome", "expected"),
    [
        (
            "mail for x.test is not accepted",
            Outcome.BOUNCED,
            ("5.0.0", "mail for x.test is not accepted"),
        ),
        ("5.1.1 no such user", Outcome.BOUNCED, ("5.1.1", "no such user")),
        ("4.7.1 try later", Outcome.BOUNCED, ("5.7.1", "try later")),
        ("5.1.1 no such user", Outcome.DEFERRED, ("4.1.1", "no such user")),
        ("address resolver failure", Outcome.DEFERRED, ("4.0.0", "address resolver failure")),
        ("", Outcome.BOUNCED, ("5.0.0", "unknown mail transport error")),
        ("5.1.1", Outcome.BOUNCED, ("5.1.1", "unknown mail transport error")),
        ("5.1.1x not a code", Outcome.BOUNCED, ("5.0.0", "5.1.1x not a code")),
        ("5.1234.1 too long", Outcome.BOUNCED, ("5.0.0", "5.1234.1 too long")),
    ],
)
def test_the_reason_may_carry_a_detail_code(
    reason: str, outcome: Outcome, expected: tuple[str, str]
) -> None:
    assert reason_status(reason, outcome) == expected


def _request(nexthop: str) -> DeliveryRequest:
    recipients = (RequestRecipient(0, "a@x.test"), RequestRecipient(3, "b@x.test"))
    return DeliveryRequest(1, "ID", nexthop, "s@y.test", 0.0, 0.0, recipients)


@pytest.mark.parametrize(
    ("service", "outcome", "dsn"),
    [("error", Outcome.BOUNCED, "5.2.2"), (RETRY_SERVICE, Outcome.DEFERRED, "4.2.2")],
)
def test_the_service_name_decides_bounce_or_defer(service: str, outcome: Outcome, dsn: str) -> None:
    deliver, _cleanup = make_deliver(Settings({}), service)
    assert list(deliver(_request("5.2.2 mailbox full"))) == [
        RecipientOutcome(0, outcome, dsn, "none", "mailbox full"),
        RecipientOutcome(3, outcome, dsn, "none", "mailbox full"),
    ]
