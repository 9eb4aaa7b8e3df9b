"""A whole instance (master, smtpd, qmgr, error and local agents): mail sent over SMTP with DSN
parameters bounces through the `error` transport (transport_maps), and the sender reads the
RFC 3464 report from its Maildir."""

from __future__ import annotations

import email
import email.message
import email.policy
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.instance import FAST_RETRIES, FULL_MASTER_CF, Instance, running_instance, wait_for

from .build import dsn_fields, report_parts, subparts, text

TRANSPORT = "fail.test error:no such mailbox here\n"


@pytest.fixture
def bouncing_mta(tmp_path: Path) -> Iterator[Instance]:
    transport = tmp_path / "transport"
    transport.write_text(TRANSPORT)
    main_cf = f"{FAST_RETRIES}default_transport = discard\ntransport_maps = texthash:{transport}\n"
    with running_instance("bounce-", FULL_MASTER_CF, main_cf) as instance:
        yield instance


def mailbox(instance: Instance, user: str) -> list[Path]:
    folder = instance.data / "mail" / user / "Maildir" / "new"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_bounce_over_smtp_returns_the_full_message_with_envid_and_orcpt(
    bouncing_mta: Instance,
) -> None:
    body = (
        b"From: user@localhost\r\nTo: bob@fail.test\r\nSubject: e2e bounce\r\n"
        b"Message-Id: <e2e.1@localhost>\r\n\r\nthe returned body\r\n"
    )
    with smtplib.SMTP("127.0.0.1", bouncing_mta.port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.has_extn("dsn")
        client.sendmail(
            "user@localhost",
            ["bob@fail.test", "kept@example.org"],
            body,
            mail_options=["RET=FULL", "ENVID=QQ314159"],
            rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;Bob@Fail.test"],
        )
    [path] = wait_for(lambda: mailbox(bouncing_mta, "user"), "the bounce in user's Maildir")
    notice = email.message_from_bytes(
        path.read_bytes().replace(b"\n", b"\r\n"), policy=email.policy.compat32
    )
    assert notice["Return-Path"] == "<>"
    assert notice["Subject"] == "Undelivered Mail Returned to Sender"
    assert notice["In-Reply-To"] == "<e2e.1@localhost>"
    _, parts = report_parts(notice.as_bytes())
    assert "<bob@fail.test>: no such mailbox here" in text(parts[0])
    per_message, [bob] = dsn_fields(parts[1])
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert per_message["X-Mta-Sender"] == "rfc822; user@localhost"
    assert bob["Final-Recipient"] == "rfc822; bob@fail.test"
    assert bob["Original-Recipient"] == "rfc822;Bob@Fail.test"
    assert (bob["Action"], bob["Status"]) == ("failed", "5.0.0")
    assert parts[2].get_content_type() == "message/rfc822"
    [original] = subparts(parts[2])
    assert original["Subject"] == "e2e bounce"
    assert "the returned body" in text(original)
    log = bouncing_mta.log.read_text()
    assert "sender non-delivery notification:" in log
    assert "status=bounced (no such mailbox here)" in log
