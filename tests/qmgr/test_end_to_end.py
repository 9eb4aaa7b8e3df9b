"""qmgr and agents as processes: mail goes from the queue to the agents and is logged."""

from __future__ import annotations

import json
import re

from support.instance import wait_for

from .conftest import MakeInstance

DISCARD_ALL = "default_transport = discard\nlocal_transport = discard\nrelay_transport = discard\n"


def test_discard_delivers_and_removes_with_postfix_log_lines(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(DISCARD_ALL)
    instance.start_agent("discard")
    instance.start_qmgr()
    ids = instance.enqueue(3, recipients=("bob@remote.test", "carol@remote.test"))
    wait_for(lambda: instance.queued() == 0, "an empty queue")
    wait_for(lambda: all(f"{i}: removed" in instance.log("qmgr") for i in ids), "removed lines")
    qmgr_log = instance.log("qmgr")
    discard_log = instance.log("discard")
    for queue_id in ids:
        assert re.search(
            rf"mta/qmgr\[\d+\]: {queue_id}: from=<alice@client.test>, size=\d+, nrcpt=2 "
            r"\(queue active\)",
            qmgr_log,
        )
        for rcpt in ("bob@remote.test", "carol@remote.test"):
            assert re.search(
                rf"mta/discard\[\d+\]: {queue_id}: to=<{rcpt}>, relay=none, delay=[\d.]+, "
                r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent \(remote\.test\)",
                discard_log,
            )
    wait_for((instance.data_directory / "qmgr.stats").exists, "stats file")
    wait_for(
        lambda: json.loads((instance.data_directory / "qmgr.stats").read_text())["delivered"] == 6,
        "delivered count",
    )
