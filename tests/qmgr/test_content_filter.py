"""qmgr and a message's content filter (the envelope extra `filter`): every recipient goes to
the filter's transport and nexthop instead of its route; a malformed filter is ignored."""

from __future__ import annotations

import re

from support.instance import wait_for

from .conftest import MakeInstance

ROUTED_LOCALLY = "local_transport = local\n"


def test_a_content_filter_takes_every_recipient_to_its_transport_and_nexthop(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(ROUTED_LOCALLY)
    instance.start_agent("discard")
    instance.start_agent("local")
    instance.start_qmgr()
    recipients = ("joe@mx.example.test", "ann@mx.example.test")
    [queue_id] = instance.enqueue(recipients=recipients, extras={"filter": "discard:filterhost"})
    [domain_id] = instance.enqueue(recipients=recipients, extras={"filter": "discard:"})
    wait_for(lambda: f"{domain_id}: removed" in instance.log("qmgr"), "removed")
    wait_for(lambda: f"{queue_id}: removed" in instance.log("qmgr"), "removed")
    discard_log = instance.log("discard")
    for rcpt in recipients:
        assert re.search(
            rf"{queue_id}: to=<{rcpt}>, relay=none, .*status=sent \(filterhost\)", discard_log
        )
        # No nexthop: the transport's default, the recipient's domain.
        assert re.search(
            rf"{domain_id}: to=<{rcpt}>, relay=none, .*status=sent \(mx\.example\.test\)",
            discard_log,
        )
    assert queue_id not in instance.log("local")
    assert not (instance.data_directory / "mail").exists()


def test_a_malformed_content_filter_is_logged_and_the_recipients_routed_normally(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(ROUTED_LOCALLY)
    instance.start_agent("discard")
    instance.start_agent("local")
    instance.start_qmgr()
    ids = [
        instance.enqueue(recipients=("joe@mx.example.test",), extras={"filter": value})[0]
        for value in ("nocolon", ":filterhost", "bad name:host")
    ]
    wait_for(lambda: all(f"{i}: removed" in instance.log("qmgr") for i in ids), "removed")
    qmgr_log, local_log = instance.log("qmgr"), instance.log("local")
    for queue_id, value in zip(ids, ("nocolon", ":filterhost", "bad name:host"), strict=True):
        assert f"warning: {queue_id}: ignoring malformed content filter: {value}" in qmgr_log
        assert re.search(
            rf"{queue_id}: to=<joe@mx.example.test>, relay=local, .*status=sent", local_log
        )
    assert "to=<" not in instance.log("discard")
