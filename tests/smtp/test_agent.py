"""The smtp and lmtp agents in process, on a real queue, against scripted servers and a real
dnsmasq: outcomes and their Postfix fields, next MX, the session limit, DNS failures, LMTP
next hops, and connection reuse as the server sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import free_port
from support.dnsmasq import Dnsmasq, serving
from support.smtpserver import Script, ScriptedServer

from mta.proto.delivery import Handoff, Outcome, RequestRecipient
from mta.queue.message import Notify
from mta.smtp.settings import Protocol

from .helpers import AgentHarness, dns_main_cf, run

RECORDS = [
    # relay.test: mx1 (127.0.0.31) first, then mx2 (127.0.0.32)
    "--mx-host=relay.test,mx1.relay.test,10",
    "--mx-host=relay.test,mx2.relay.test,20",
    "--host-record=mx1.relay.test,127.0.0.31",
    "--host-record=mx2.relay.test,127.0.0.32",
    # three.test: three MX hosts of distinct preferences
    "--mx-host=three.test,mx1.three.test,10",
    "--mx-host=three.test,mx2.three.test,20",
    "--mx-host=three.test,mx3.three.test,30",
    "--host-record=mx1.three.test,127.0.0.41",
    "--host-record=mx2.three.test,127.0.0.42",
    "--host-record=mx3.three.test,127.0.0.43",
    "--dns-rr=null.test,15,000000",
]


@pytest.fixture(scope="module")
def dns() -> Iterator[Dnsmasq]:
    with serving(RECORDS) as server:
        yield server


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[AgentHarness]:
    made = AgentHarness(tmp_path)
    yield made
    made.close()


# -- outcomes --------------------------------------------------------------------------------


def test_delivery_to_a_bracketed_next_hop_reports_postfix_fields(harness: AgentHarness) -> None:
    with ScriptedServer(Script()) as server:
        [outcomes] = harness.run(harness.request(f"[127.0.0.1]:{server.port}"))
    (outcome,) = outcomes
    assert outcome.outcome is Outcome.SENT
    assert outcome.dsn == "2.0.0"
    assert outcome.relay == f"127.0.0.1[127.0.0.1]:{server.port}"
    assert outcome.text == "250 2.0.0 Ok: queued as TEST"
    assert outcome.handoff is Handoff.RELAYED
    assert (
        server.messages[0].content == b"Subject: test\r\nFrom: a@sender.test\r\n\r\nbody line\r\n"
    )


def test_dsn_is_passed_on_when_the_server_offers_it(harness: AgentHarness) -> None:
    recipients = (
        RequestRecipient(0, "n@rcpt.test", notify=int(Notify.SUCCESS | Notify.FAILURE)),
        RequestRecipient(1, "plain@rcpt.test"),
    )
    with ScriptedServer(Script(dsn=True)) as server:
        [outcomes] = harness.run(harness.request(f"[127.0.0.1]:{server.port}", *recipients))
    assert [o.handoff for o in outcomes] == [Handoff.DSN_PASSED_ON, Handoff.RELAYED]
    assert server.messages[0].rcpt_lines[0] == (
        "RCPT TO:<n@rcpt.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;n@rcpt.test"
    )


def test_a_server_without_dsn_leaves_the_notice_to_us(harness: AgentHarness) -> None:
    recipient = RequestRecipient(0, "n@rcpt.test", notify=int(Notify.SUCCESS))
    with ScriptedServer(Script(dsn=False)) as server:
        [outcomes] = harness.run(harness.request(f"[127.0.0.1]:{server.port}", recipient))
    assert outcomes[0].handoff is Handoff.RELAYED


def test_mixed_replies_become_sent_deferred_and_bounced(harness: AgentHarness) -> None:
    script = Script(
        rcpt_replies={"t@rcpt.test": "450 4.2.1 try later", "p@rcpt.test": "550 5.1.1 unknown"}
    )
    with ScriptedServer(script) as server:
        request = harness.request(
            f"[127.0.0.1]:{server.port}", "ok@rcpt.test", "t@rcpt.test", "p@rcpt.test"
        )
        [outcomes] = harness.run(request)
    assert [(o.index, o.outcome, o.dsn) for o in outcomes] == [
        (0, Outcome.SENT, "2.0.0"),
        (1, Outcome.DEFERRED, "4.2.1"),
        (2, Outcome.BOUNCED, "5.1.1"),
    ]
    assert outcomes[2].text.endswith("said: 550 5.1.1 unknown (in reply to RCPT TO command)")
    assert len(server.sessions) == 1  # the bracketed next hop has one host: no retry elsewhere


# -- hosts in order --------------------------------------------------------------------------


def test_next_mx_after_connection_refused(tmp_path: Path, dns: Dnsmasq) -> None:
    port = free_port("127.0.0.32")
    harness = AgentHarness(tmp_path, dns_main_cf(dns.port))
    with ScriptedServer(Script(), host="127.0.0.32", port=port) as server:
        [outcomes] = harness.run(harness.request(f"relay.test:{port}"))
    harness.close()
    assert outcomes[0].outcome is Outcome.SENT
    assert outcomes[0].relay == f"mx2.relay.test[127.0.0.32]:{port}"
    assert len(server.messages) == 1


def test_next_mx_after_a_4xx_greeting(tmp_path: Path, dns: Dnsmasq) -> None:
    port = free_port("127.0.0.31")
    harness = AgentHarness(tmp_path, dns_main_cf(dns.port))
    busy = ScriptedServer(Script(greeting="421 4.3.2 too busy"), host="127.0.0.31", port=port)
    with busy, ScriptedServer(Script(), host="127.0.0.32", port=port) as good:
        [outcomes] = harness.run(harness.request(f"relay.test:{port}"))
    harness.close()
    assert outcomes[0].relay == f"mx2.relay.test[127.0.0.32]:{port}"
    assert outcomes[0].outcome is Outcome.SENT
    assert len(good.messages) == 1


def test_a_recipient_deferred_by_one_mx_is_tried_on_the_next(tmp_path: Path, dns: Dnsmasq) -> None:
    port = free_port("127.0.0.31")
    harness = AgentHarness(tmp_path, dns_main_cf(dns.port))
    first = ScriptedServer(
        Script(rcpt_replies={"b@rcpt.test": "451 4.3.0 later"}), host="127.0.0.31", port=port
    )
    with first, ScriptedServer(Script(), host="127.0.0.32", port=port) as second:
        [outcomes] = harness.run(
            harness.request(f"relay.test:{port}", "a@rcpt.test", "b@rcpt.test")
        )
    harness.close()
    assert [o.outcome for o in outcomes] == [Outcome.SENT, Outcome.SENT]
    assert [m.rcpt_tos for m in first.messages] == [["a@rcpt.test"]]
    assert [m.rcpt_tos for m in second.messages] == [["b@rcpt.test"]]


def test_at_most_smtp_mx_session_limit_sessions(tmp_path: Path, dns: Dnsmasq) -> None:
    port = free_port("127.0.0.41")
    harness = AgentHarness(tmp_path, dns_main_cf(dns.port))
    servers = [
        ScriptedServer(Script(greeting=f"421 4.3.2 busy {n}"), host=f"127.0.0.4{n}", port=port)
        for n in (1, 2, 3)
    ]
    for server in servers:
        server.start()
    try:
        [outcomes] = harness.run(harness.request(f"three.test:{port}"))
    finally:
        for server in servers:
            server.stop()
        harness.close()
    assert outcomes[0].outcome is Outcome.DEFERRED
    assert outcomes[0].text == (
        "host mx2.three.test[127.0.0.42] refused to talk to me: 421 4.3.2 busy 2"
    )
    assert outcomes[0].dsn == "4.3.2"
    # As Postfix logs it: the host that said so, since a session was made with it.
    assert outcomes[0].relay.startswith("mx2.three.test[127.0.0.42]:")
    assert outcomes[0].site_failure
    assert [len(server.sessions) for server in servers] == [0, 0, 0]  # no command was sent
    assert [server.greeted for server in servers] == [1, 1, 0]


# -- DNS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nexthop", "outcome", "dsn"),
    [
        ("null.test", Outcome.BOUNCED, "5.1.10"),
        ("nowhere.test", Outcome.BOUNCED, "5.1.2"),
    ],
)
def test_permanent_dns_failures_bounce(
    tmp_path: Path, dns: Dnsmasq, nexthop: str, outcome: Outcome, dsn: str
) -> None:
    harness = AgentHarness(tmp_path, dns_main_cf(dns.port))
    [outcomes] = harness.run(harness.request(nexthop))
    harness.close()
    assert (outcomes[0].outcome, outcomes[0].dsn, outcomes[0].relay) == (outcome, dsn, "none")


def test_an_unreachable_name_server_defers(tmp_path: Path) -> None:
    silent = free_port()
    main_cf = (
        f"smtp_dns_resolver_address = 127.0.0.1\nsmtp_dns_resolver_port = {silent}\n"
        "smtp_dns_resolver_timeout = 1s\n"
    )
    harness = AgentHarness(tmp_path, main_cf)
    [outcomes] = harness.run(harness.request("relay.test"))
    harness.close()
    assert (outcomes[0].outcome, outcomes[0].dsn) == (Outcome.DEFERRED, "4.4.3")


# -- LMTP next hops --------------------------------------------------------------------------


def test_lmtp_next_hop_forms(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, protocol=Protocol.LMTP)
    socket_path = tmp_path / "lmtp.sock"
    with (
        ScriptedServer(Script(lmtp=True)) as tcp,
        ScriptedServer(Script(lmtp=True), unix_path=socket_path) as unix,
    ):
        results = harness.run(
            harness.request(f"inet:127.0.0.1:{tcp.port}"),
            harness.request(f"[127.0.0.1]:{tcp.port}"),
            harness.request(f"127.0.0.1:{tcp.port}"),
            harness.request(f"unix:{socket_path}"),
        )
    harness.close()
    assert [r[0].outcome for r in results] == [Outcome.SENT] * 4
    assert [r[0].handoff for r in results] == [Handoff.DELIVERED] * 4
    assert results[0][0].relay == f"127.0.0.1[127.0.0.1]:{tcp.port}"
    assert results[3][0].relay == f"client.test[{socket_path}]"
    assert len(tcp.messages) == 3 and len(unix.messages) == 1
    assert all(commands[0] == "LHLO client.test" for commands in tcp.commands())
    assert tcp.commands()[0][-1] == "QUIT"  # lmtp_skip_quit_response = no: QUIT is answered


def test_lmtp_unix_path_is_relative_to_the_queue_directory(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, protocol=Protocol.LMTP)
    (harness.queue_directory / "private").mkdir(exist_ok=True)
    socket_path = harness.queue_directory / "private" / "dovecot-lmtp"
    with ScriptedServer(Script(lmtp=True), unix_path=socket_path) as unix:
        [outcomes] = harness.run(harness.request("unix:private/dovecot-lmtp"))
    harness.close()
    assert outcomes[0].outcome is Outcome.SENT and len(unix.messages) == 1


def test_lmtp_per_recipient_replies(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, protocol=Protocol.LMTP)
    script = Script(lmtp=True, final_replies={"full@rcpt.test": "552 5.2.2 over quota"})
    with ScriptedServer(script) as server:
        request = harness.request(f"inet:127.0.0.1:{server.port}", "ok@rcpt.test", "full@rcpt.test")
        [outcomes] = harness.run(request)
    harness.close()
    assert [(o.outcome, o.dsn) for o in outcomes] == [
        (Outcome.SENT, "2.0.0"),
        (Outcome.BOUNCED, "5.2.2"),
    ]
    assert "(in reply to end of DATA command)" in outcomes[1].text


# -- connection reuse, seen from the server ----------------------------------------------------


def test_a_session_is_reused_for_the_next_message(harness: AgentHarness) -> None:
    with ScriptedServer(Script()) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        results = harness.run(*(harness.request(nexthop) for _ in range(3)))
    assert all(r[0].outcome is Outcome.SENT for r in results)
    (commands,) = server.commands()
    assert sum(c.startswith("MAIL") for c in commands) == 3
    assert sum(c == "RSET" for c in commands) == 2  # the reuse check before messages 2 and 3
    assert harness.agent.cache.reused == 2


def test_reuse_count_limit(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, "smtp_connection_reuse_count_limit = 1\n")
    with ScriptedServer(Script()) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        harness.run(*(harness.request(nexthop) for _ in range(5)))
    harness.close()
    # each session: its first message and one reuse
    assert [sum(c.startswith("MAIL") for c in s) for s in server.commands()] == [2, 2, 1]


def test_reuse_time_limit(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, "smtp_connection_reuse_time_limit = 1s\n")
    with ScriptedServer(Script()) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        harness.run(harness.request(nexthop), harness.request(nexthop), pause=1.1)
    harness.close()
    assert len(server.commands()) == 2


def test_an_idle_session_leaves_the_cache_after_its_time_limit(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, "smtp_connection_cache_time_limit = 1s\n")
    with ScriptedServer(Script()) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        harness.run(harness.request(nexthop), harness.request(nexthop), pause=1.3)
    harness.close()
    first, second = server.commands()
    assert first[-1] == "QUIT" and "RSET" not in first
    assert len(second) >= 2


def test_a_broken_cached_session_is_replaced_by_a_new_one(harness: AgentHarness) -> None:
    port = free_port()
    nexthop = f"[127.0.0.1]:{port}"

    async def main() -> list[Outcome]:
        outcomes = []
        with ScriptedServer(Script(), port=port):
            outcomes.append((await harness.deliver(harness.request(nexthop)))[0].outcome)
        # the server went away with our cached session; a new server on the same port
        with ScriptedServer(Script(), port=port) as again:
            outcomes.append((await harness.deliver(harness.request(nexthop)))[0].outcome)
            harness.agent.cache.close()
        assert len(again.messages) == 1
        return outcomes

    assert run(main()) == [Outcome.SENT, Outcome.SENT]
    assert harness.agent.cache.reused == 0
