"""Notices made by a running qmgr with real agents: they are queued with the results they
report, delivered like any mail (here to Maildirs by the local agent), and read back."""

from __future__ import annotations

import email.message
import re
import signal
from collections.abc import Callable
from pathlib import Path

from qmgr.harness import Instance
from support.instance import wait_for

from mta.bounce.notices import DELAY_WARNED_EXTRA
from mta.queue import Message, Notify, Recipient

from .build import dsn_fields, parse, report_parts, subparts
from .conftest import MakeInstance

LOCAL = "local_transport = local\nmyorigin = mx.example.test\n"
CONTENT = b"Subject: test\r\nMessage-Id: <m1@client.test>\r\n\r\nhello\r\n"


def maildir(instance: Instance, user: str) -> Path:
    return instance.data_directory / "mail" / user / "Maildir" / "new"


def read_mail(instance: Instance, user: str, count: int) -> list[email.message.Message]:
    folder = maildir(instance, user)
    wait_for(
        lambda: folder.exists() and len(list(folder.iterdir())) >= count, f"{count} for {user}"
    )
    files = sorted(folder.iterdir())
    assert len(files) == count, [f.read_text(errors="replace")[:300] for f in files]
    return [parse(f.read_bytes().replace(b"\n", b"\r\n")) for f in files]


def removed(instance: Instance, queue_id: str) -> Callable[[], bool]:
    return lambda: f"{queue_id}: removed" in instance.log("qmgr")


def enqueue(instance: Instance, sender: str, *recipients: Recipient, **fields: object) -> str:
    [queue_id] = instance.queue.enqueue(
        [Message(sender, recipients, CONTENT, **fields)]  # type: ignore[arg-type]
    )
    instance.trigger()
    return queue_id


def test_delay_warning_is_sent_once_and_not_again_after_a_qmgr_restart(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(
        "default_transport = nowhere\ndelay_warning_time = 1s\nqueue_run_delay = 1s\n"
        "minimal_backoff_time = 1s\nmaximal_backoff_time = 1s\ntransport_retry_time = 1s\n"
    )
    instance.start_qmgr()
    queue_id = enqueue(
        instance,
        "alice@client.test",
        Recipient("bob@remote.test"),
        Recipient("carol@remote.test", notify=Notify.FAILURE),
        envid="ENV-7",
    )
    pattern = rf"{queue_id}: sender delay notification: (\w+)"
    wait_for(lambda: re.search(pattern, instance.log("qmgr")), "the delay warning")
    assert DELAY_WARNED_EXTRA in instance.queue.get(queue_id).extras
    instance.kill("qmgr")
    deferrals = instance.log("qmgr").count(f"{queue_id}: to=<bob@remote.test>")
    instance.start_qmgr()
    wait_for(
        lambda: instance.log("qmgr").count(f"{queue_id}: to=<bob@remote.test>") >= deferrals + 2,
        "two more passes after the restart",
    )
    qmgr_log = instance.log("qmgr")
    [notice_id] = re.findall(pattern, qmgr_log)
    assert qmgr_log.count("delay notification") == 1  # none about the warning (null sender)
    notice = instance.queue.get(notice_id)
    assert notice.sender == ""
    assert [r.recipient.address for r in notice.recipients] == ["alice@client.test"]
    header, parts = report_parts(instance.queue.content(notice_id))
    assert header["Subject"] == "Delayed Mail (still being retried)"
    per_message, blocks = dsn_fields(parts[1])
    assert per_message["Original-Envelope-Id"] == "ENV-7"
    [bob] = blocks  # carol asked for failures only
    assert bob["Final-Recipient"] == "rfc822; bob@remote.test"
    assert bob["Action"] == "delayed"
    assert bob["Status"] == "4.3.0"
    assert "mail transport unavailable" in bob["Diagnostic-Code"]
    assert bob["Will-Retry-Until"]


def test_notify_success_notices_follow_the_agents_handoff(make_instance: MakeInstance) -> None:
    instance = make_instance(
        LOCAL + "transport_maps = inline:{ relayed.test=handoff:relayed, "
        "passed.test=handoff:passed }\n"
    )
    instance.start_agent("local")
    instance.start_agent("handoff", module="tests.bounce.handoff_agent")
    instance.start_qmgr()
    success = Notify.SUCCESS | Notify.FAILURE
    queue_id = enqueue(
        instance,
        "alice@mx.example.test",
        Recipient("bob@relayed.test", notify=success),
        Recipient("carol@passed.test", notify=success),
        Recipient("dave@mx.example.test", notify=success),
        Recipient("erin@relayed.test"),
    )
    wait_for(lambda: f"{queue_id}: removed" in instance.log("qmgr"), "the message delivered")
    sent = re.findall(
        rf"{queue_id}: sender delivery status notification: (\w+)", instance.log("qmgr")
    )
    assert 1 <= len(sent) <= 3  # one per commit that recorded a delivery
    for notice_id in sent:
        wait_for(removed(instance, notice_id), "notice delivered")
    actions = {}
    for notice in read_mail(instance, "alice", len(sent)):
        assert notice["Subject"] == "Successful Mail Delivery Report"
        assert notice["In-Reply-To"] == "<m1@client.test>"
        for block in dsn_fields(subparts(notice)[1])[1]:
            actions[block["Final-Recipient"]] = (block["Action"], block["Remote-MTA"])
    assert actions == {
        "rfc822; bob@relayed.test": ("relayed", "dns; mx.relayed.test"),
        "rfc822; dave@mx.example.test": ("delivered", None),
    }


def test_bounces_postmaster_copies_and_double_bounces_land_in_the_mailboxes(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(
        LOCAL + "notify_classes = bounce, 2bounce\n"
        "transport_maps = inline:{ { remote.test=error:mailbox unavailable } }\n"
    )
    instance.start_agent("local")
    instance.start_agent("error")
    instance.start_qmgr()
    single = enqueue(instance, "alice@mx.example.test", Recipient("bob@remote.test"))
    double = enqueue(instance, "", Recipient("bob@remote.test"))
    triple = enqueue(instance, "double-bounce@mx.example.test", Recipient("bob@remote.test"))
    for queue_id in (single, double, triple):
        wait_for(removed(instance, queue_id), "bounced")
    qmgr_log = instance.log("qmgr")
    assert re.search(rf"{single}: sender non-delivery notification: \w+", qmgr_log)
    assert re.search(rf"{single}: postmaster non-delivery notification: \w+", qmgr_log)
    assert re.search(rf"{double}: postmaster non-delivery notification: \w+", qmgr_log)
    assert f"{triple}: undeliverable postmaster notification discarded" in qmgr_log

    [to_alice] = read_mail(instance, "alice", 1)
    assert to_alice["Subject"] == "Undelivered Mail Returned to Sender"
    assert to_alice["To"] == "alice@mx.example.test"
    assert to_alice["Return-Path"] == "<>"
    _, parts = report_parts(to_alice.as_bytes())
    [bob] = dsn_fields(parts[1])[1]
    assert (bob["Action"], bob["Status"]) == ("failed", "5.0.0")
    assert bob["Diagnostic-Code"] == "X-mta; mailbox unavailable"

    copies = read_mail(instance, "postmaster", 2)
    assert {m["Subject"] for m in copies} == {"Postmaster Copy: Undelivered Mail"}
    assert {m["Return-Path"] for m in copies} == {"<double-bounce@mx.example.test>"}
    kinds = sorted(subparts(m)[2].get_content_type() for m in copies)
    assert kinds == ["message/rfc822", "text/rfc822-headers"]  # the double bounce is whole


def test_a_crashed_agent_tells_error_notice_recipient_once(make_instance: MakeInstance) -> None:
    instance = make_instance(
        LOCAL + "delivery_agent_crash_retry_time = 1s\ntransport_retry_time = 1s\n"
    )
    instance.start_qmgr()
    instance.start_agent("local")
    instance.processes["local"].send_signal(signal.SIGSTOP)
    queue_id = enqueue(instance, "alice@mx.example.test", Recipient("kim@mx.example.test"))
    wait_for(lambda: "(queue active)" in instance.log("qmgr"), "active")
    instance.kill("local")
    pattern = rf"{queue_id}: postmaster error notification: (\w+)"
    wait_for(lambda: re.search(pattern, instance.log("qmgr")), "the error notice")
    instance.start_agent("local")
    wait_for(lambda: f"{queue_id}: removed" in instance.log("qmgr"), "delivered after all")
    [notice] = read_mail(instance, "postmaster", 1)
    assert notice["Subject"] == "Postmaster Warning: Mail Delivery Problem"
    [kim] = dsn_fields(subparts(notice)[1])[1]
    assert kim["Action"] == "delayed"
    assert "delivery agent crashed" in kim["Diagnostic-Code"]
    assert len(re.findall(pattern, instance.log("qmgr"))) == 1
