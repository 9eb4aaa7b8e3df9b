"""qmgr with the local and error agents, bounces, expiry, and processes killed mid-delivery."""

from __future__ import annotations

import json
import re
import signal
import time

from support.instance import wait_for

from mta.bounce.notices import NoticeSettings, result_notices
from mta.bounce.report import ReportContext
from mta.queue import QueueName, RecipientResult, RecipientStatus

from .conftest import MakeInstance


def test_local_agent_writes_maildir_with_headers_and_bounces_bad_local_parts(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance("local_transport = local\n")
    instance.start_agent("local")
    instance.start_qmgr()
    [queue_id] = instance.enqueue(recipients=("Joe@mx.example.test", ".hidden@mx.example.test"))
    wait_for(lambda: f"{queue_id}: removed" in instance.log("qmgr"), "removed")
    maildir = instance.data_directory / "mail" / "joe" / "Maildir"
    [delivered] = list((maildir / "new").iterdir())
    assert not list((maildir / "tmp").iterdir())
    text = delivered.read_bytes()
    assert text.startswith(
        b"Return-Path: <alice@client.test>\nDelivered-To: Joe@mx.example.test\nSubject: test\n"
    )
    assert b"\r\n" not in text
    local_log = instance.log("local")
    assert "to=<Joe@mx.example.test>, relay=local" in local_log
    assert "status=sent (delivered to maildir)" in local_log
    assert "to=<.hidden@mx.example.test>, relay=local" in local_log
    assert "dsn=5.1.1, status=bounced (unknown user)" in local_log
    assert re.search(rf"{queue_id}: sender non-delivery notification: \w+", instance.log("qmgr"))


def test_error_agent_bounce_returns_an_rfc3464_report_to_the_sender(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance("default_transport = error:mail for remote.test refused\n")
    instance.start_agent("error")
    [queue_id] = instance.enqueue()
    [null_id] = instance.enqueue(sender="")
    instance.start_qmgr()
    wait_for(lambda: f"{null_id}: removed" in instance.log("qmgr"), "null-sender mail removed")
    wait_for(lambda: f"{queue_id}: removed" in instance.log("qmgr"), "removed")
    assert "dsn=5.0.0, status=bounced (mail for remote.test refused)" in instance.log("error")
    assert f"{null_id}: undeliverable notice to the null sender discarded" in instance.log("qmgr")
    match = re.search(rf"{queue_id}: sender non-delivery notification: (\w+)", instance.log("qmgr"))
    assert match
    # The notice goes to alice@client.test: error again, and being null-sender, no loop.
    bounce_id = match.group(1)
    wait_for(lambda: f"{bounce_id}: removed" in instance.log("qmgr"), "notice handled")
    assert re.search(rf"{bounce_id}: from=<>, size=\d+, nrcpt=1", instance.log("qmgr"))


def test_bounce_content_is_a_delivery_status_report(make_instance: MakeInstance) -> None:
    instance = make_instance()
    [queue_id] = instance.enqueue()
    result = RecipientResult(queue_id, 0, RecipientStatus.BOUNCED, "5.0.0", "no such domain")
    instance.queue.record_results([result])
    settings = NoticeSettings(ReportContext("mx.example.test", "mx.example.test"))
    [sent] = result_notices(
        instance.queue.get(queue_id),
        [result],
        lambda: instance.queue.content(queue_id),
        settings,
        time.time(),
    ).notices
    assert sent.what == "sender non-delivery notification"
    notice = sent.message
    content = notice.content.decode()
    assert "multipart/report; report-type=delivery-status" in content
    assert "Content-Type: message/delivery-status" in content
    assert "Final-Recipient: rfc822; bob@remote.test" in content
    assert "Action: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: X-mta; no such domain" in content
    assert (
        "Content-Type: text/rfc822-headers\r\n\r\n"
        "Return-Path: <alice@client.test>\r\nSubject: test\r\n"
    ) in content
    assert notice.sender == ""
    assert notice.recipients[0].address == "alice@client.test"


def test_missing_transport_defers_then_expired_mail_returns_to_sender(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(
        "default_transport = nowhere\nmaximal_queue_lifetime = 1s\n"
        "minimal_backoff_time = 1s\nmaximal_backoff_time = 1s\ntransport_retry_time = 1s\n"
        "queue_run_delay = 1s\n"
    )
    instance.start_qmgr()
    [queue_id] = instance.enqueue()
    wait_for(lambda: "status=expired, returned to sender" in instance.log("qmgr"), "expiry")
    qmgr_log = instance.log("qmgr")
    assert re.search(
        rf"{queue_id}: to=<bob@remote.test>, relay=none, .*dsn=4\.3\.0, "
        r"status=deferred \(mail transport unavailable\)",
        qmgr_log,
    )
    assert f"{queue_id}: from=<alice@client.test>, status=expired, returned to sender" in qmgr_log
    wait_for(lambda: f"{queue_id}: removed" in instance.log("qmgr"), "removed")
    stats_path = instance.data_directory / "qmgr.stats"
    wait_for(lambda: json.loads(stats_path.read_text())["expired"] >= 1, "expired count")


def test_agent_killed_mid_delivery_defers_and_retries_without_loss(
    make_instance: MakeInstance,
) -> None:
    # The retry may reach the socket before the new agent listens: then the transport waits
    # transport_retry_time, which must stay inside this test's patience.
    instance = make_instance(
        "local_transport = local\ndelivery_agent_crash_retry_time = 1s\ntransport_retry_time = 1s\n"
    )
    instance.start_qmgr()
    instance.start_agent("local")
    # Stop the agent so requests are queued in its socket, then kill it.
    instance.processes["local"].send_signal(signal.SIGSTOP)
    ids = instance.enqueue(5, recipients=("kim@mx.example.test",))
    wait_for(lambda: instance.log("qmgr").count("(queue active)") == 5, "active")
    instance.kill("local")
    wait_for(lambda: "delivery agent crashed" in instance.log("qmgr"), "crash deferral")
    instance.start_agent("local")
    wait_for(lambda: all(f"{i}: removed" in instance.log("qmgr") for i in ids), "delivered")
    maildir = instance.data_directory / "mail" / "kim" / "Maildir" / "new"
    assert len(list(maildir.iterdir())) >= 5
    assert instance.queued() == 0


def test_qmgr_killed_leaves_active_mail_that_a_restart_delivers(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance("default_transport = discard\n")
    instance.start_agent("discard")
    instance.processes["discard"].send_signal(signal.SIGSTOP)
    instance.start_qmgr()
    ids = instance.enqueue(4)
    wait_for(lambda: instance.queue.count(QueueName.ACTIVE) == 4, "active")
    instance.kill("qmgr")
    instance.processes["discard"].send_signal(signal.SIGCONT)
    instance.start_qmgr()
    wait_for(lambda: instance.queued() == 0, "empty queue")
    assert all(f"{i}: removed" in instance.log("qmgr") for i in ids)


def test_qmgr_killed_again_and_again_loses_nothing_and_logs_every_delivery(
    make_instance: MakeInstance,
) -> None:
    # qmgr commits without the meta-page fsync and in one transaction per cycle: a kill -9
    # may undo or cut short any of its work, never lose mail or a delivery's status line.
    instance = make_instance("default_transport = discard\n")
    instance.start_agent("discard")
    ids: list[str] = []
    for _ in range(5):
        instance.start_qmgr()
        ids += instance.enqueue(60)
        time.sleep(0.05)
        instance.kill("qmgr")
    instance.start_qmgr()
    wait_for(lambda: instance.queued() == 0, "empty queue")
    sent = instance.log("discard")
    for queue_id in ids:
        assert f"{queue_id}: to=<bob@remote.test>" in sent  # at least once


def test_bursts_are_delivered_and_removed_exactly_once(make_instance: MakeInstance) -> None:
    instance = make_instance("default_transport = discard\n")
    instance.start_agent("discard")
    instance.start_qmgr()
    ids = [queue_id for _ in range(20) for queue_id in instance.enqueue(25)]
    wait_for(lambda: instance.queued() == 0, "empty queue")
    wait_for(lambda: instance.log("qmgr").count(": removed") == len(ids), "removed lines")
    sent, qmgr_log = instance.log("discard"), instance.log("qmgr")
    for queue_id in ids:
        assert sent.count(f"{queue_id}: to=<") == 1
        assert qmgr_log.count(f"{queue_id}: removed") == 1
