"""Mail through a running mta instance out to real receivers: Postfix's smtp-sink reached by
relayhost, by a dnsmasq MX and through the relay service, and Dovecot's LMTP server reached by
transport_maps `lmtp:unix:/path` and `lmtp:inet:host:port`; the mail is read back where each
receiver stored it."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from support.dnsmasq import serving
from support.dovecot import Dovecot, running_dovecot
from support.instance import FAST_RETRIES, Instance, running_instance, wait_for
from support.smtpsink import running_sink

from .helpers import dns_main_cf

MASTER_CF = """\
127.0.0.1:0 inet n - n - - smtpd
qmgr      unix  n - n 300 1 qmgr
error     unix  - - n -   - error
smtp      unix  - - n -   - smtp
relay     unix  - - n -   - smtp
lmtp      unix  - - n -   - lmtp
"""


def sunk(directory: Path) -> dict[str, str]:
    """Recipient (X-Rcpt-Args) -> the dump smtp-sink wrote for it (one per transaction)."""
    found: dict[str, str] = {}
    for path in directory.iterdir():
        text = path.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("X-Rcpt-Args: <"):
                found[line.split("<", 1)[1].split(">", 1)[0]] = text
    return found


@pytest.mark.slow
def test_mail_leaves_through_smtp_relay_and_lmtp() -> None:
    records = ["--mx-host=sink.test,mx.sink.test,10", "--host-record=mx.sink.test,127.0.0.1"]
    with running_sink(keep=True) as sink, serving(records) as dns, running_dovecot() as dovecot:
        sink_port, sink_directory = sink.port, sink.kept
        main_cf = (
            f"{FAST_RETRIES}relayhost = [127.0.0.1]:{sink_port}\n"
            "relay_domains = relayed.test\n"
            f"{dns_main_cf(dns.port)}"
            f"transport_maps = inline:{{ sink.test=smtp:sink.test:{sink_port}, "
            f"dove.test=lmtp:unix:{dovecot.socket}, "
            f"dovetcp.test=lmtp:inet:127.0.0.1:{dovecot.port} }}\n"
        )
        with running_instance("e2e-smtp-", MASTER_CF, main_cf) as instance:
            _send_and_check(instance, sink_port, sink_directory, dovecot)


RECIPIENTS = [
    "far@remote.test",
    "far2@remote.test",
    "mx@sink.test",
    "rel@relayed.test",
    "joe@dove.test",
    "ann@dovetcp.test",
]


def _send_and_check(
    instance: Instance, sink_port: int, sink_directory: Path, dovecot: Dovecot
) -> None:
    with smtplib.SMTP("127.0.0.1", instance.port, timeout=10) as client:
        # the two remote.test recipients in one message: one transaction to the next hop
        for recipients in (RECIPIENTS[:2], *([r] for r in RECIPIENTS[2:])):
            client.sendmail(
                "sender@example.org",
                recipients,
                f"Subject: to {recipients[0]}\r\n\r\nbody for {recipients[0]}\r\n".encode(),
            )

    def sent_lines() -> list[str] | None:
        lines = [line for line in instance.log.read_text().splitlines() if "status=sent" in line]
        return lines if len(lines) >= len(RECIPIENTS) else None

    lines = wait_for(sent_lines, "six deliveries")
    by_recipient = {r: next(line for line in lines if f"to=<{r}>" in line) for r in RECIPIENTS}
    assert f"relay=127.0.0.1[127.0.0.1]:{sink_port}," in by_recipient["far@remote.test"]
    assert " mta/smtp[" in by_recipient["far@remote.test"]
    assert f"relay=mx.sink.test[127.0.0.1]:{sink_port}," in by_recipient["mx@sink.test"]
    assert " mta/relay[" in by_recipient["rel@relayed.test"]
    assert f"relay=127.0.0.1[127.0.0.1]:{sink_port}," in by_recipient["rel@relayed.test"]
    assert f"[{dovecot.socket}]," in by_recipient["joe@dove.test"]
    assert " mta/lmtp[" in by_recipient["joe@dove.test"]
    assert f"relay=127.0.0.1[127.0.0.1]:{dovecot.port}," in by_recipient["ann@dovetcp.test"]
    assert all("dsn=2.0.0" in line for line in lines)

    dumps = wait_for(
        lambda: (found := sunk(sink_directory)) and len(found) >= 4 and found, "smtp-sink files"
    )
    assert dumps["far@remote.test"] == dumps["far2@remote.test"]
    assert dumps["far@remote.test"].count("X-Rcpt-Args: ") == 2
    for recipient in ("far@remote.test", "mx@sink.test", "rel@relayed.test"):
        assert f"body for {recipient}" in dumps[recipient]
    joe = wait_for(lambda: dovecot.messages("joe"), "joe's mail in Dovecot")
    ann = wait_for(lambda: dovecot.messages("ann"), "ann's mail in Dovecot")
    assert b"Subject: to joe@dove.test" in joe[0] and b"body for joe@dove.test" in joe[0]
    assert b"Delivered-To: joe@dove.test" in joe[0]
    assert b"Subject: to ann@dovetcp.test" in ann[0]
