"""The scheduler in a running qmgr: rate delays, a deferred backlog beside new mail, a dead
destination that gets no connection storm, and the active queue's limit."""

from __future__ import annotations

import itertools
import re
import signal
import time

import pytest
from support.daemon import free_port
from support.instance import wait_for
from support.smtpsink import running_sink

from mta.queue import Message, QueueName, Recipient, RecipientResult, RecipientStatus

from .conftest import MakeInstance
from .harness import Instance


def queue_ids_in_order(log: str, pattern: str) -> list[str]:
    return re.findall(rf"\]: (\w+): {pattern}", log)


@pytest.mark.slow
def test_destination_rate_delay_spaces_deliveries_to_one_destination(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance(
        "default_transport = discard\ndiscard_destination_rate_delay = 1s\n"
        "initial_destination_concurrency = 10\n"
    )
    instance.start_agent("discard")
    instance.start_qmgr()
    ids = instance.enqueue(3, recipients=("bob@remote.test",))
    [other] = instance.enqueue(recipients=("carol@other.test",))
    wait_for(lambda: instance.queued() == 0, "empty queue")
    log = instance.log("discard")
    # The agent logs delay= (arrival to delivery, by its own clock; the three arrived in one
    # enqueue): remote.test got one delivery per second, not three at once.
    delays = [
        float(re.findall(rf"\]: {queue_id}: to=<bob@remote\.test>.*?, delay=([\d.]+),", log)[0])
        for queue_id in ids
    ]
    assert delays == sorted(delays)
    gaps = [later - earlier for earlier, later in itertools.pairwise(delays)]
    assert all(0.9 <= gap < 3.0 for gap in gaps), delays  # 1 s, give or take the rounding
    # other.test is another destination: it does not wait behind remote.test's delay.
    order = queue_ids_in_order(log, "to=<")
    assert order.index(other) < order.index(ids[1])


def make_due_backlog(instance: Instance, count: int) -> list[str]:
    """count messages in the deferred queue, all due: the backlog after an outage."""
    content = b"Subject: backlog\r\n\r\nhello\r\n"
    backlog = Message("alice@client.test", (Recipient("old@remote.test"),), content)
    ids = instance.queue.enqueue([backlog] * count)
    instance.queue.move(ids, QueueName.ACTIVE)
    past = time.time() - 10
    instance.queue.record_results(
        [RecipientResult(i, 0, RecipientStatus.DEFERRED, "4.4.1", "outage", past) for i in ids]
    )
    assert instance.queue.count(QueueName.DEFERRED) == count
    return ids


def test_a_deferred_backlog_does_not_starve_new_mail_nor_wait_for_the_next_queue_run(
    make_instance: MakeInstance,
) -> None:
    # 1000 due deferred messages and two new ones wait when qmgr starts; an intake takes 50.
    instance = make_instance("default_transport = discard\nqmgr_intake_batch_limit = 50\n")
    backlog = make_due_backlog(instance, 1000)
    new = instance.enqueue(2, recipients=("fresh@remote.test",))
    instance.start_agent("discard")
    instance.start_qmgr()
    # The backlog drains at once, not at the next queue_run_delay (300s) ...
    wait_for(lambda: instance.queued() == 0, "empty queue")
    activated = queue_ids_in_order(instance.log("qmgr"), r"from=<[^>]*>, size=\d+, nrcpt=1")
    assert sorted(activated) == sorted(backlog + new)
    # ... and the new mail went into the active queue with the first intake.
    assert max(activated.index(queue_id) for queue_id in new) < 50


def thirty_deferred(make_instance: MakeInstance, port: int) -> tuple[Instance, list[str]]:
    """30 messages for the smtp agent to relayhost 127.0.0.1:port (an initial window of 2),
    once they are all in the deferred queue."""
    instance = make_instance(
        f"default_transport = smtp\nrelayhost = [127.0.0.1]:{port}\n"
        "initial_destination_concurrency = 2\n"
    )
    instance.start_agent("smtp")
    instance.start_qmgr()
    ids = instance.enqueue(30)
    wait_for(
        lambda: instance.queue.count(QueueName.DEFERRED) == len(ids) and instance.queued() == 30,
        "all mail deferred",
    )
    return instance, ids


def test_a_dead_destination_gets_no_connection_storm_and_its_mail_is_deferred(
    make_instance: MakeInstance,
) -> None:
    instance, ids = thirty_deferred(make_instance, free_port())
    smtp_log, qmgr_log = instance.log("smtp"), instance.log("qmgr")
    tried = queue_ids_in_order(smtp_log, r"to=<bob@remote\.test>.*status=deferred")
    suspended = queue_ids_in_order(
        qmgr_log,
        r"to=<bob@remote\.test>.*dsn=4\.4\.1, status=deferred \(delivery temporarily suspended: ",
    )
    # Two connection attempts (the initial window) made the destination dead; the other 28
    # messages were deferred by qmgr without a connection attempt, and nothing bounced.
    assert len(tried) == 2, smtp_log
    assert sorted(tried + suspended) == sorted(ids)
    assert "Connection refused" in qmgr_log
    assert "status=bounced" not in smtp_log + qmgr_log
    # The later retry: `mta queue flush` gives the destination another chance, and again it
    # gets only its initial window of connection attempts before it is dead once more.
    instance.trigger(b"F")
    wait_for(lambda: instance.log("smtp").count("status=deferred") == 4, "a second try")
    wait_for(lambda: instance.log("qmgr").count("temporarily suspended") == 56, "56 deferrals")
    time.sleep(0.2)
    assert instance.log("smtp").count("status=deferred") == 4
    assert instance.queued() == 30


def test_intake_stops_at_the_active_limit_and_resumes_when_messages_leave(
    make_instance: MakeInstance,
) -> None:
    instance = make_instance("default_transport = discard\nqmgr_message_active_limit = 5\n")
    instance.start_agent("discard")
    instance.processes["discard"].send_signal(signal.SIGSTOP)  # nothing leaves for now
    instance.start_qmgr()
    ids = instance.enqueue(20)
    wait_for(lambda: instance.log("qmgr").count("(queue active)") == 5, "five active")
    instance.trigger()
    time.sleep(0.3)
    assert instance.log("qmgr").count("(queue active)") == 5  # the rest wait in incoming
    assert instance.queued() == 20
    instance.processes["discard"].send_signal(signal.SIGCONT)
    wait_for(lambda: instance.queued() == 0, "empty queue")
    activated = queue_ids_in_order(instance.log("qmgr"), r"from=<[^>]*>, size=\d+, nrcpt=1")
    assert sorted(activated) == sorted(ids)  # each taken once, none lost


def test_a_server_that_defers_every_recipient_is_not_a_dead_destination(
    make_instance: MakeInstance,
) -> None:
    """Greylisting: the server answers, so its 4xx replies to RCPT are no site failure."""
    with running_sink("-r", "rcpt") as sink:
        instance, ids = thirty_deferred(make_instance, sink.port)
        tried = queue_ids_in_order(instance.log("smtp"), r"to=<bob@remote\.test>.*status=deferred")
        assert sorted(tried) == sorted(ids)  # every message reached the server
        assert "temporarily suspended" not in instance.log("qmgr")
