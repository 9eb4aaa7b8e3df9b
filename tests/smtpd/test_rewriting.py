"""smtpd applies envelope rewriting (mta.rewrite) as it receives mail, over real sockets."""

from __future__ import annotations

import logging
import smtplib
from pathlib import Path

import pytest

from mta.config.maincf import settings_from_text
from mta.rewrite import Resolver
from mta.smtpd.policy import RelayPolicy

from .harness import StartServer

BODY = b"Subject: rewriting\r\n\r\nbody\r\n"
ALIASES = (
    "myhostname = mx.example.com\n"
    "masquerade_domains = example.org\n"
    "canonical_maps = inline:{ old@example.org=new@host.example.org }\n"
    "virtual_alias_domains = aliases.example\n"
    "virtual_alias_maps = inline:{ {team@aliases.example = root@localhost, bob@localhost} }\n"
)


def test_aliases_expand_and_the_sender_is_canonical_and_masqueraded(
    start_server: StartServer,
) -> None:
    server = start_server(ALIASES)
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("old@example.org", ["team@aliases.example", "root@localhost"], BODY)
    [message] = server.messages()
    assert message.sender == "new@example.org"
    assert [(r.recipient.address, r.recipient.orig_address) for r in message.recipients] == [
        ("root@localhost", "team@aliases.example"),
        ("bob@localhost", "team@aliases.example"),
        ("root@localhost", ""),
    ]


def test_unknown_user_of_a_virtual_alias_domain_is_refused_at_rcpt(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(ALIASES)
    with smtplib.SMTP("127.0.0.1", server.port) as client, caplog.at_level(logging.INFO):
        client.mail("a@example.net")
        code, text = client.rcpt("nobody@aliases.example")
    assert (code, text) == (
        550,
        b"5.1.1 <nobody@aliases.example>: Recipient address rejected: "
        b"User unknown in virtual alias table",
    )
    assert "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1" in caplog.text
    assert server.messages() == []


def test_a_table_that_cannot_answer_gives_451_at_rcpt_and_mail(
    start_server: StartServer, short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = short_tmp / "nosuchtable"
    server = start_server(
        f"virtual_alias_maps = texthash:{missing}\nsender_canonical_maps = texthash:{missing}\n"
    )
    with smtplib.SMTP("127.0.0.1", server.port) as client, caplog.at_level(logging.INFO):
        assert client.mail("a@example.net") == (
            451,
            b"4.3.0 <a@example.net>: Temporary lookup failure",
        )
        client.rset()
        assert client.mail("") == (250, b"2.1.0 Ok")  # the null sender is never looked up
        assert client.rcpt("root@localhost") == (
            451,
            b"4.3.0 <root@localhost>: Temporary lookup failure",
        )
    assert f"warning: recipient root@localhost: table texthash:{missing}" in caplog.text
    assert server.messages() == []


def test_default_configuration_queues_addresses_as_given(start_server: StartServer) -> None:
    server = start_server("")
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("a@example.net", ["root@localhost"], BODY)
    [message] = server.messages()
    assert message.sender == "a@example.net"
    [state] = message.recipients
    assert (state.recipient.address, state.recipient.orig_address) == ("root@localhost", "")


def test_clients_outside_mynetworks_may_send_to_virtual_domains(short_tmp: Path) -> None:
    main_cf = ALIASES + "virtual_mailbox_domains = inline:{ boxes.example=yes }\n"
    settings = settings_from_text(main_cf, "main.cf")
    policy = RelayPolicy.from_settings(settings, Resolver.from_settings(settings))
    assert policy.check_untrusted_recipient("team@aliases.example") is None
    assert policy.check_untrusted_recipient("u@boxes.example") is None
    denied = policy.check_untrusted_recipient("u@elsewhere.example")
    assert str(denied) == "554 5.7.1 <u@elsewhere.example>: Relay access denied"
    broken = settings_from_text(f"virtual_alias_domains = texthash:{short_tmp / 'none'}\n", "m")
    deferring = RelayPolicy.from_settings(broken, Resolver.from_settings(broken))
    assert str(deferring.check_untrusted_recipient("u@elsewhere.example")) == (
        "451 4.3.0 <u@elsewhere.example>: Temporary lookup failure"
    )


def test_header_addresses_are_rewritten_in_the_queued_content(
    start_server: StartServer, short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(ALIASES)
    content = (
        b'From: "Old, Sender" <old@example.org>\r\n'
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: Joe <joe@host.example.org>, other@example.net\r\n"
        b"Subject: old@example.org\r\n\r\nold@example.org\r\n"
    )
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        client.sendmail("old@example.org", ["root@localhost"], content)
    [message] = server.messages()
    assert server.content(message.queue_id).endswith(
        b'From: "Old, Sender" <new@example.org>\r\n'
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: Joe <joe@example.org>, other@example.net\r\n"
        b"Subject: old@example.org\r\n\r\nold@example.org\r\n"
    )
    missing = short_tmp / "nosuchtable"
    failing = start_server(
        f"canonical_maps = texthash:{missing}\ncanonical_classes = header_sender\n"
    )
    with smtplib.SMTP("127.0.0.1", failing.port) as client, caplog.at_level(logging.INFO):
        client.mail("a@example.net")
        client.rcpt("root@localhost")
        assert client.data(b"From: a@example.net\r\n\r\nbody\r\n") == (
            451,
            b"4.3.0 Temporary lookup failure",
        )
    assert f"table texthash:{missing}" in caplog.text
    assert failing.messages() == []
