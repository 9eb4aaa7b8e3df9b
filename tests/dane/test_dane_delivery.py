"""End to end: a full instance with smtp_tls_security_level = dane delivers through the real
validating resolver to a TLS-capable receiver on loopback (tests/support/smtpserver.py).

Every MX host of the test zones resolves to 127.0.0.1, where one receiver offers STARTTLS
with a certificate for all of them (leaf + intermediate); transport_maps sends each test
domain to the receiver's port, and the zones' wildcard TLSA records (`*._tcp.HOST`) cover
whatever port that is. What decides each outcome is DNSSEC and TLSA alone:

  dane.signed.test     secure MX, TLSA 3 1 1 of the receiver's key   sent, Verified TLS
  ta.signed.test       secure MX, TLSA 2 1 1 of its issuing CA        sent, Verified TLS
  bad.signed.test      secure MX, TLSA 3 1 1 of another key           deferred, 4.7.5
  bogusmx.signed.test  secure MX, TLSA with a bad signature           deferred, 4.7.5
  unsigned.test        insecure MX (TLSA that would fail is ignored)  sent, Untrusted TLS
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Iterator

import pytest
from support.dnssec import SIGNED, UNSIGNED, DnssecWorld
from support.instance import FAST_RETRIES, Instance, running_instance, wait_for
from support.smtpserver import Script, ScriptedServer

MASTER_CF = """\
127.0.0.1:0 inet n - n - - smtpd
qmgr      unix  n - n 300 1 qmgr
smtp      unix  - - n -   - smtp
error     unix  - - n -   - error
discard   unix  - - n -   - discard
"""
DOMAINS = [f"dane.{SIGNED}", f"ta.{SIGNED}", f"bad.{SIGNED}", f"bogusmx.{SIGNED}", UNSIGNED]
QUEUED_AS = re.compile(r"queued as (?P<id>[0-9A-Za-z]+)")

pytestmark = pytest.mark.slow  # a whole instance: a few seconds to start and stop


@pytest.fixture(scope="module")
def receiver(world: DnssecWorld) -> Iterator[ScriptedServer]:
    certificate, key = world.pki.receiver.write(
        world.directory, "receiver", chain=[world.pki.intermediate]
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    with ScriptedServer(Script(starttls=context)) as server:
        yield server


@pytest.fixture(scope="module")
def dane_mta(world: DnssecWorld, receiver: ScriptedServer) -> Iterator[Instance]:
    routes = ", ".join(f"{domain}=smtp:{domain}:{receiver.port}" for domain in DOMAINS)
    main_cf = (
        FAST_RETRIES
        + "inet_protocols = ipv4\n"
        + "smtp_dns_resolver_address = 127.0.0.1\n"
        + f"smtp_dns_resolver_port = {world.unbound.port}\n"
        + "smtp_dns_support_level = dnssec\n"
        + "smtp_tls_security_level = dane\n"
        + f"transport_maps = inline:{{ {routes} }}\n"
    )
    with running_instance("dane-", MASTER_CF, main_cf) as instance:
        yield instance


def submit(instance: Instance, recipient: str) -> str:
    """One message to recipient; the queue id from the 250 reply to DATA."""
    with smtplib.SMTP("127.0.0.1", instance.port, timeout=10) as client:
        assert client.ehlo()[0] == 250
        assert client.mail("sender@example.org")[0] == 250
        assert client.rcpt(recipient)[0] == 250
        code, text = client.data(f"Subject: to {recipient}\r\n\r\nbody\r\n".encode())
    assert code == 250, text
    match = QUEUED_AS.search(text.decode())
    assert match, text
    return match["id"]


def status_line(instance: Instance, queue_id: str, recipient: str) -> str:
    """Wait for the agent's status line for this recipient of this message."""

    def find() -> str | None:
        text = instance.log.read_text(errors="replace") if instance.log.exists() else ""
        for line in text.splitlines():
            if f"{queue_id}: to=<{recipient}>" in line and "status=" in line:
                return line
        return None

    found: str = wait_for(find, f"{queue_id}: to=<{recipient}> status=")
    return found


def tls_lines(instance: Instance, host: str) -> list[str]:
    text = instance.log.read_text(errors="replace")
    return [
        line
        for line in text.splitlines()
        if "TLS connection established to" in line and f" {host}[" in line
    ]


def received_by(receiver: ScriptedServer, recipient: str) -> list[bool]:
    """For each message the receiver got for recipient: whether it came over TLS."""
    return [message.tls for message in receiver.messages if recipient in message.rcpt_tos]


def test_matching_tlsa_delivers_over_verified_tls(
    dane_mta: Instance, receiver: ScriptedServer
) -> None:
    recipient = f"user@dane.{SIGNED}"
    line = status_line(dane_mta, submit(dane_mta, recipient), recipient)
    assert "status=sent" in line and "dsn=2.0.0" in line, line
    assert f"relay=mx-dane.{SIGNED}[127.0.0.1]:{receiver.port}" in line, line
    verified = tls_lines(dane_mta, f"mx-dane.{SIGNED}")
    assert verified and all(
        entry.split(": ", 1)[1].startswith("Verified TLS") for entry in verified
    )
    assert received_by(receiver, recipient) == [True]


def test_dane_ta_record_of_the_issuing_ca_delivers_over_verified_tls(
    dane_mta: Instance, receiver: ScriptedServer
) -> None:
    recipient = f"user@ta.{SIGNED}"
    line = status_line(dane_mta, submit(dane_mta, recipient), recipient)
    assert "status=sent" in line, line
    verified = tls_lines(dane_mta, f"mx-ta.{SIGNED}")
    assert verified and all("Verified TLS connection established" in entry for entry in verified)
    assert received_by(receiver, recipient) == [True]


def test_mismatching_tlsa_defers_with_4_7_5(dane_mta: Instance, receiver: ScriptedServer) -> None:
    recipient = f"user@bad.{SIGNED}"
    line = status_line(dane_mta, submit(dane_mta, recipient), recipient)
    assert "status=deferred" in line and "dsn=4.7.5" in line, line
    assert "not trusted" in line or "not verified" in line, line
    assert received_by(receiver, recipient) == []


def test_a_bogus_tlsa_signature_defers(dane_mta: Instance, receiver: ScriptedServer) -> None:
    recipient = f"user@bogusmx.{SIGNED}"
    line = status_line(dane_mta, submit(dane_mta, recipient), recipient)
    assert "status=deferred" in line and "dsn=4." in line, line
    assert received_by(receiver, recipient) == []


def test_an_unsigned_zone_falls_back_to_opportunistic_tls(
    dane_mta: Instance, receiver: ScriptedServer
) -> None:
    # its TLSA records would not match the receiver, but insecure records are never used
    recipient = f"user@{UNSIGNED}"
    line = status_line(dane_mta, submit(dane_mta, recipient), recipient)
    assert "status=sent" in line, line
    untrusted = tls_lines(dane_mta, f"mx.{UNSIGNED}")
    assert untrusted and all("Untrusted TLS connection established" in entry for entry in untrusted)
    assert received_by(receiver, recipient) == [True]
