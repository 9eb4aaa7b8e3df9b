"""TLS in the SMTP client: each security level, smtp_tls_policy_maps, certificate names, the
log line, and plain text injected before the handshake (CVE-2021-38371)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.certs import make_ca
from support.daemon import free_port
from support.dnsmasq import Dnsmasq, serving
from support.smtpserver import Script, ScriptedServer

from mta.proto.delivery import Outcome
from mta.smtp.session import RecipientResult, TlsPlan

from .conftest import Pki
from .helpers import AgentHarness, deliver_once, dns_main_cf, envelope, run, session_to

RECORDS = [
    "--mx-host=tls.test,mx.tls.test,10",
    "--host-record=mx.tls.test,127.0.0.51",
    # an MX host outside the destination's domain: verify trusts it, secure does not
    "--mx-host=away.test,mail.elsewhere.test,10",
    "--host-record=mail.elsewhere.test,127.0.0.52",
]


@pytest.fixture(scope="module")
def dns() -> Iterator[Dnsmasq]:
    with serving(RECORDS) as server:
        yield server


def policy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tls_policy"
    path.write_text(text)
    return f"smtp_tls_policy_maps = texthash:{path}\n"


def deliver(tmp_path: Path, main_cf: str, nexthop: str) -> list[Outcome | str]:
    harness = AgentHarness(tmp_path, main_cf)
    try:
        [outcomes] = harness.run(harness.request(nexthop))
    finally:
        harness.close()
    return [outcomes[0].outcome, outcomes[0].dsn, outcomes[0].text]


def tls_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if "TLS connection established" in r.getMessage()
    ]


# -- levels ----------------------------------------------------------------------------------


def test_level_none_never_starts_tls(tmp_path: Path, pki: Pki) -> None:
    script = Script(starttls=pki.server_context(["mx.tls.test"]))
    with ScriptedServer(script) as server:
        outcome = deliver(tmp_path, "", f"[127.0.0.1]:{server.port}")
    assert outcome[0] is Outcome.SENT
    assert "STARTTLS" not in server.commands()[0]
    assert not server.messages[0].tls


def test_may_uses_tls_when_offered_and_logs_protocol_and_cipher(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "mta.smtp")
    script = Script(starttls=pki.server_context(["mx.tls.test"]))
    with ScriptedServer(script) as server:
        outcome = deliver(tmp_path, "smtp_tls_security_level = may\n", f"[127.0.0.1]:{server.port}")
    assert outcome[0] is Outcome.SENT
    assert server.messages[0].tls
    commands = server.commands()[0]
    assert commands[:3] == ["EHLO client.test", "STARTTLS", "EHLO client.test"]
    (line,) = tls_log(caplog)
    assert line.startswith(
        f"Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{server.port}: TLSv1."
    )
    assert " with cipher " in line and "bits)" in line


def test_may_without_starttls_sends_in_plain_text(tmp_path: Path) -> None:
    with ScriptedServer(Script()) as server:
        outcome = deliver(tmp_path, "smtp_tls_security_level = may\n", f"[127.0.0.1]:{server.port}")
    assert outcome[0] is Outcome.SENT and not server.messages[0].tls


def _tls12_only(pki: Pki) -> ssl.SSLContext:
    context = pki.server_context(["mx.tls.test"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def test_may_retries_in_plain_text_after_a_failed_handshake(tmp_path: Path, pki: Pki) -> None:
    with ScriptedServer(Script(starttls=_tls12_only(pki))) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        policy = policy_file(tmp_path, f"{nexthop} may protocols=>=TLSv1.3\n")
        outcome = deliver(tmp_path, policy, nexthop)
    assert outcome[0] is Outcome.SENT
    first, second = server.commands()
    assert "STARTTLS" in first and "STARTTLS" not in second
    assert not server.messages[0].tls


def test_dane_falling_back_to_may_keeps_the_protocols_of_the_policy(
    tmp_path: Path, pki: Pki
) -> None:
    """An address has no DNSSEC-validated records: dane acts as may, with protocols= still in
    force (a TLS 1.2 session here would ignore the policy)."""
    with ScriptedServer(Script(starttls=_tls12_only(pki))) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        policy = policy_file(tmp_path, f"{nexthop} dane protocols=>=TLSv1.3\n")
        outcome = deliver(tmp_path, policy, nexthop)
    assert outcome[0] is Outcome.SENT
    first, second = server.commands()
    assert "STARTTLS" in first and "STARTTLS" not in second
    assert not server.messages[0].tls


def test_encrypt_defers_when_starttls_is_not_offered(tmp_path: Path) -> None:
    with ScriptedServer(Script()) as server:
        port = server.port
        outcome = deliver(tmp_path, "smtp_tls_security_level = encrypt\n", f"[127.0.0.1]:{port}")
    assert outcome == [
        Outcome.DEFERRED,
        "4.7.4",
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]",
    ]
    assert not any(c.startswith("MAIL") for c in server.commands()[0])


def test_encrypt_takes_an_unverified_certificate(tmp_path: Path, pki: Pki) -> None:
    self_signed = make_ca("somebody else")
    script = Script(starttls=pki.server_context(["mx.tls.test"], issuer=self_signed))
    with ScriptedServer(script) as server:
        outcome = deliver(
            tmp_path, "smtp_tls_security_level = encrypt\n", f"[127.0.0.1]:{server.port}"
        )
    assert outcome[0] is Outcome.SENT and server.messages[0].tls


def test_encrypt_never_falls_back_to_plain_text(tmp_path: Path, pki: Pki) -> None:
    with ScriptedServer(Script(starttls=_tls12_only(pki))) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        policy = policy_file(tmp_path, f"{nexthop} encrypt protocols=>=TLSv1.3\n")
        outcome = deliver(tmp_path, policy, nexthop)
    assert outcome[:2] == [Outcome.DEFERRED, "4.7.5"]
    assert "Cannot start TLS: handshake failure" in str(outcome[2])
    assert len(server.commands()) == 1 and server.messages == []


def test_verify_with_the_ca_file_and_a_matching_name(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "mta.smtp")
    with ScriptedServer(Script(starttls=pki.server_context(["mx.tls.test"]))) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        main_cf = policy_file(tmp_path, f"{nexthop} verify match=mx.tls.test\n")
        outcome = deliver(tmp_path, main_cf + f"smtp_tls_CAfile = {pki.ca_file}\n", nexthop)
    assert outcome[0] is Outcome.SENT and server.messages[0].tls
    assert tls_log(caplog)[0].startswith("Verified TLS connection established to 127.0.0.1")


def test_verify_refuses_a_certificate_from_another_ca(tmp_path: Path, pki: Pki) -> None:
    stranger = make_ca("not our root")
    script = Script(starttls=pki.server_context(["mx.tls.test"], issuer=stranger))
    with ScriptedServer(script) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        main_cf = policy_file(tmp_path, f"{nexthop} verify match=mx.tls.test\n")
        outcome = deliver(tmp_path, main_cf + f"smtp_tls_CAfile = {pki.ca_file}\n", nexthop)
    assert outcome[:2] == [Outcome.DEFERRED, "4.7.5"]
    assert "Server certificate not verified" in str(outcome[2])
    assert server.messages == []


def test_verify_refuses_a_certificate_for_another_name(tmp_path: Path, pki: Pki) -> None:
    script = Script(starttls=pki.server_context(["mx.other.test"]))
    with ScriptedServer(script) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        main_cf = policy_file(tmp_path, f"{nexthop} verify match=mx.tls.test:.tls.test\n")
        outcome = deliver(tmp_path, main_cf + f"smtp_tls_CAfile = {pki.ca_file}\n", nexthop)
    assert outcome[:2] == [Outcome.DEFERRED, "4.7.5"]
    assert "no name matches mx.tls.test, .tls.test" in str(outcome[2])
    assert server.messages == []


def test_verify_checks_the_mx_host_name(tmp_path: Path, pki: Pki, dns: Dnsmasq) -> None:
    port = free_port("127.0.0.51")
    main_cf = (
        f"{dns_main_cf(dns.port)}smtp_tls_security_level = verify\n"
        f"smtp_tls_CAfile = {pki.ca_file}\n"
    )
    script = Script(starttls=pki.server_context(["mx.tls.test"]))
    with ScriptedServer(script, host="127.0.0.51", port=port) as server:
        outcome = deliver(tmp_path / "a", main_cf, f"tls.test:{port}")
    assert outcome[0] is Outcome.SENT and server.messages[0].tls


def test_secure_trusts_the_next_hop_domain_not_the_mx_name(
    tmp_path: Path, pki: Pki, dns: Dnsmasq
) -> None:
    port = free_port("127.0.0.52")
    main_cf = f"{dns_main_cf(dns.port)}smtp_tls_CAfile = {pki.ca_file}\n"
    script = Script(starttls=pki.server_context(["mail.elsewhere.test"]))
    with ScriptedServer(script, host="127.0.0.52", port=port) as server:
        verify = deliver(
            tmp_path / "v", main_cf + "smtp_tls_security_level = verify\n", f"away.test:{port}"
        )
        secure = deliver(
            tmp_path / "s", main_cf + "smtp_tls_security_level = secure\n", f"away.test:{port}"
        )
    assert verify[0] is Outcome.SENT
    assert secure[:2] == [Outcome.DEFERRED, "4.7.5"]
    assert "no name matches away.test, .away.test" in str(secure[2])
    assert len(server.messages) == 1


def test_secure_accepts_a_name_under_the_next_hop(tmp_path: Path, pki: Pki, dns: Dnsmasq) -> None:
    port = free_port("127.0.0.51")
    main_cf = (
        f"{dns_main_cf(dns.port)}smtp_tls_CAfile = {pki.ca_file}\n"
        "smtp_tls_security_level = secure\n"
    )
    with ScriptedServer(
        Script(starttls=pki.server_context(["*.tls.test"])), host="127.0.0.51", port=port
    ) as server:
        outcome = deliver(tmp_path, main_cf, f"tls.test:{port}")
    assert outcome[0] is Outcome.SENT and server.messages[0].tls


# -- policy maps -----------------------------------------------------------------------------


def test_policy_maps_choose_the_level_per_destination(tmp_path: Path, pki: Pki) -> None:
    with ScriptedServer(Script()) as plain, ScriptedServer(Script()) as other:
        strict = f"[127.0.0.1]:{plain.port}"
        main_cf = policy_file(tmp_path, f"{strict} encrypt\n") + "smtp_tls_security_level = may\n"
        harness = AgentHarness(tmp_path, main_cf)
        results = harness.run(harness.request(strict), harness.request(f"[127.0.0.1]:{other.port}"))
        harness.close()
    assert [r[0].outcome for r in results] == [Outcome.DEFERRED, Outcome.SENT]
    assert results[0][0].dsn == "4.7.4"


def test_a_policy_for_a_parent_domain_covers_its_subdomains(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, policy_file(tmp_path, ".example.test secure\n"))
    policy = harness.agent.policies.lookup("mail.example.test")
    harness.close()
    assert getattr(policy, "level", None) == "secure"


def test_an_unusable_policy_defers_without_connecting(tmp_path: Path) -> None:
    with ScriptedServer(Script()) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        outcome = deliver(
            tmp_path, policy_file(tmp_path, f"{nexthop} encrypt ciphers=high\n"), nexthop
        )
    assert outcome[:2] == [Outcome.DEFERRED, "4.7.5"]
    assert "unsupported TLS policy attribute 'ciphers'" in str(outcome[2])
    assert server.commands() == []


# -- CVE-2021-38371: plain text before the handshake ------------------------------------------


@pytest.mark.parametrize(
    "injected",
    [b"250-PIPELINING\r\n250 INJECTED\r\n", b"554 5.7.1 injected refusal\r\n"],
    ids=["fake-ehlo", "fake-refusal"],
)
def test_plain_text_sent_before_the_handshake_is_discarded(pki: Pki, injected: bytes) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    plan = TlsPlan(context, mandatory=True)
    script = Script(starttls=pki.server_context(["mx.tls.test"]), inject_after_starttls=injected)
    with ScriptedServer(script) as server:
        results, extensions = run(_deliver_with_extensions(server.port, plan))
    assert "INJECTED" not in extensions and "STARTTLS" not in extensions
    assert [r.code for r in results] == [250]
    assert server.messages[0].tls
    assert server.commands()[0][:3] == ["EHLO client.test", "STARTTLS", "EHLO client.test"]


async def _deliver_with_extensions(
    port: int, plan: TlsPlan
) -> tuple[list[RecipientResult], list[str]]:
    session = await session_to(port, plan=plan)
    try:
        extensions = list(session.extensions)
        results = await session.deliver(envelope(), b"Subject: x\r\n\r\nbody\r\n")
    finally:
        session.quit()
    return list(results), extensions


def test_deliver_once_helper_speaks_tls(pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.check_hostname = False
    plan = TlsPlan(context, mandatory=True, names=("mx.tls.test",))
    with ScriptedServer(Script(starttls=pki.server_context(["mx.tls.test"]))) as server:
        results = run(deliver_once(server.port, envelope(), plan=plan))
    assert [r.code for r in results] == [250] and server.messages[0].tls


def test_a_refused_starttls_is_plain_text_at_may_and_deferred_at_encrypt(
    tmp_path: Path, pki: Pki
) -> None:
    script = Script(
        starttls=pki.server_context(["mx.tls.test"]),
        replies={"STARTTLS": "454 4.7.0 TLS not available due to local problem"},
    )
    with ScriptedServer(script) as server:
        nexthop = f"[127.0.0.1]:{server.port}"
        may = deliver(tmp_path / "may", "smtp_tls_security_level = may\n", nexthop)
        encrypt = deliver(tmp_path / "encrypt", "smtp_tls_security_level = encrypt\n", nexthop)
    assert may[0] is Outcome.SENT and not server.messages[0].tls
    assert encrypt[:2] == [Outcome.DEFERRED, "4.7.4"]
    assert "refused to start TLS: 454 4.7.0 TLS not available" in str(encrypt[2])
    assert len(server.messages) == 1
