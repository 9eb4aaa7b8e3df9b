"""smtp_tls_security_level = dane (and dane-only) in the smtp agent, end to end: a real NSD
serving a zone signed at test time, a real validating unbound (tests/support/dnssec.py), and a
scripted receiver presenting the certificate the TLSA records name (RFC 7672)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dnssec import DnssecWorld, dnssec_world
from support.smtpserver import Script, ScriptedServer

from mta.proto.delivery import Outcome

from .helpers import AgentHarness, dns_main_cf


@pytest.fixture(scope="module")
def world() -> Iterator[DnssecWorld]:
    with dnssec_world() as made:
        yield made


def receiver_context(world: DnssecWorld, directory: Path) -> ssl.SSLContext:
    """The server side of mx-dane/mx-bad/mx-ta.signed.test: leaf and intermediate."""
    certificate, key = world.pki.receiver.write(
        directory, "receiver", chain=[world.pki.intermediate]
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    return context


@pytest.fixture(scope="module")
def receiver(world: DnssecWorld, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return receiver_context(world, tmp_path_factory.mktemp("dane-receiver"))


def deliver(
    tmp_path: Path, world: DnssecWorld, nexthop: str, level: str = "dane"
) -> tuple[Outcome, str, str]:
    main_cf = (
        f"{dns_main_cf(world.unbound.port)}"
        "smtp_dns_support_level = dnssec\nsmtp_dns_resolver_timeout = 3s\n"
        f"smtp_tls_security_level = {level}\n"
    )
    harness = AgentHarness(tmp_path, main_cf)
    try:
        [outcomes] = harness.run(harness.request(nexthop))
    finally:
        harness.close()
    return outcomes[0].outcome, outcomes[0].dsn, outcomes[0].text


def verified(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("Verified TLS connection established to ")
    ]


def test_dane_ee_match_is_verified(
    tmp_path: Path,
    world: DnssecWorld,
    receiver: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mta.smtp")
    with ScriptedServer(Script(starttls=receiver)) as server:
        outcome = deliver(tmp_path, world, f"dane.signed.test:{server.port}")
    assert outcome[0] is Outcome.SENT
    assert server.messages[0].tls
    assert verified(caplog)[0].startswith("Verified TLS connection established to mx-dane")


def test_dane_ta_match_is_verified(
    tmp_path: Path, world: DnssecWorld, receiver: ssl.SSLContext
) -> None:
    with ScriptedServer(Script(starttls=receiver)) as server:
        outcome = deliver(tmp_path, world, f"ta.signed.test:{server.port}")
    assert outcome[0] is Outcome.SENT and server.messages[0].tls


def test_sni_names_the_tlsa_base_domain_behind_a_validated_cname(
    tmp_path: Path, world: DnssecWorld
) -> None:
    """RFC 7672 8.1: the client sends the TLSA base domain, here the CNAME's target."""
    directory = tmp_path / "receiver"
    directory.mkdir()
    context = receiver_context(world, directory)  # its own: the module's has no SNI callback
    names: list[str | None] = []
    context.sni_callback = lambda _ssl_object, name, _context: names.append(name)
    with ScriptedServer(Script(starttls=context)) as server:
        outcome = deliver(tmp_path, world, f"[mx-alias.signed.test]:{server.port}")
    assert outcome[0] is Outcome.SENT and server.messages[0].tls
    assert names == ["mx-dane.signed.test"]


def test_a_certificate_the_tlsa_records_do_not_name_is_refused(
    tmp_path: Path, world: DnssecWorld, receiver: ssl.SSLContext
) -> None:
    with ScriptedServer(Script(starttls=receiver)) as server:
        outcome = deliver(tmp_path, world, f"bad.signed.test:{server.port}")
    assert outcome[:2] == (Outcome.DEFERRED, "4.7.5")
    assert "Server certificate not trusted" in outcome[2]
    assert server.messages == []


def test_usable_tlsa_records_make_starttls_mandatory(tmp_path: Path, world: DnssecWorld) -> None:
    with ScriptedServer(Script()) as server:
        outcome = deliver(tmp_path, world, f"dane.signed.test:{server.port}")
    assert outcome[:2] == (Outcome.DEFERRED, "4.7.4")
    assert server.messages == []


def test_an_insecure_mx_is_opportunistic(
    tmp_path: Path, world: DnssecWorld, receiver: ssl.SSLContext
) -> None:
    # unsigned.test publishes a TLSA record that would not match: it is not even looked at
    with ScriptedServer(Script(starttls=receiver)) as server:
        outcome = deliver(tmp_path, world, f"unsigned.test:{server.port}")
    assert outcome[0] is Outcome.SENT and server.messages[0].tls


def test_dane_only_refuses_an_insecure_mx(tmp_path: Path, world: DnssecWorld) -> None:
    with ScriptedServer(Script()) as server:
        outcome = deliver(tmp_path, world, f"unsigned.test:{server.port}", "dane-only")
    assert outcome[:2] == (Outcome.DEFERRED, "4.7.5")
    assert server.commands() == []


def test_a_tlsa_lookup_failure_defers(tmp_path: Path, world: DnssecWorld) -> None:
    with ScriptedServer(Script()) as server:
        outcome = deliver(tmp_path, world, f"bogusmx.signed.test:{server.port}")
    assert outcome[:2] == (Outcome.DEFERRED, "4.7.5")
    assert server.commands() == []
