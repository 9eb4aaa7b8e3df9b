"""smtpd's small parts without sockets: settings, Received header, command counts, trigger."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from mta.config.maincf import BUILTIN_DEFAULTS, ConfigError, Settings
from mta.smtpd.received import address_literal, protocol_name, received_header
from mta.smtpd.settings import SmtpdSettings
from mta.smtpd.stats import CommandStats
from mta.util.trigger import FLUSH_DEFERRED, SCAN_INCOMING, TriggerReceiver, TriggerSender


def settings_with(**overrides: str) -> Settings:
    return Settings({**BUILTIN_DEFAULTS, **overrides})


def test_defaults_follow_postfix() -> None:
    smtpd = SmtpdSettings.from_settings(settings_with(myhostname="mx.example.com"))
    assert smtpd.banner == "mx.example.com ESMTP mta"
    assert smtpd.limits.message_size_limit == 10240000
    assert smtpd.limits.recipient_limit == 1000
    assert smtpd.limits.bare_newline == "strict"
    assert (smtpd.hard_error_limit, smtpd.timeout, smtpd.disable_vrfy) == (20, 300.0, False)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("smtpd_timeout", "5m", 300.0), ("smtpd_timeout", "2h", 7200.0), ("smtpd_timeout", "7", 7.0)],
)
def test_durations_take_postfix_units(name: str, value: str, expected: float) -> None:
    assert SmtpdSettings.from_settings(settings_with(**{name: value})).timeout == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtpd_timeout", "soon"),
        ("smtpd_timeout", "0"),
        ("message_size_limit", "0"),
        ("message_size_limit", "-5"),
        ("smtpd_recipient_limit", "many"),
        ("smtpd_hard_error_limit", "0"),
        ("smtpd_forbid_bare_newline", "maybe"),
        ("disable_vrfy_command", "perhaps"),
        ("smtpd_banner", ""),
    ],
)
def test_invalid_value_is_a_config_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SmtpdSettings.from_settings(settings_with(**{name: value}))


@pytest.mark.parametrize("value", ["normal", "no"])
def test_bare_newline_normal_and_no_map_to_normal(value: str) -> None:
    settings = settings_with(smtpd_forbid_bare_newline=value)
    assert SmtpdSettings.from_settings(settings).limits.bare_newline == "normal"


@pytest.mark.parametrize(
    ("verb", "smtputf8", "tls", "auth", "expected"),
    [
        ("HELO", False, False, False, "SMTP"),
        ("EHLO", False, False, False, "ESMTP"),
        ("EHLO", False, True, False, "ESMTPS"),
        ("EHLO", False, False, True, "ESMTPA"),
        ("EHLO", False, True, True, "ESMTPSA"),
        ("EHLO", True, False, False, "UTF8SMTP"),
        ("EHLO", True, True, True, "UTF8SMTPSA"),
        (None, False, False, False, "SMTP"),
    ],
)
def test_protocol_names_follow_rfc_3848_and_6531(
    verb: str | None, smtputf8: bool, tls: bool, auth: bool, expected: str
) -> None:
    assert protocol_name(verb, smtputf8, tls, auth) == expected


def test_received_header_for_ipv6_client_and_one_recipient() -> None:
    header = received_header(
        helo="client.example",
        client_name="unknown",
        client_literal=address_literal("2001:db8::1"),
        myhostname="mx.example.com",
        mail_name="mta",
        protocol="ESMTP",
        recipients=["user@example.com"],
        date=format_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    )
    assert header == (
        b"Received: from client.example (unknown [IPv6:2001:db8::1])\r\n"
        b"\tby mx.example.com (mta) with ESMTP id \0\0\0\0\0\0\0\0\0\0\r\n"
        b"\tfor <user@example.com>; Tue, 02 Jan 2024 03:04:05 +0000\r\n"
    )


def test_disconnect_summary_counts_like_postfix() -> None:
    stats = CommandStats()
    for command, ok in [("quit", True), ("ehlo", True), ("rcpt", False), ("rcpt", True)]:
        stats.record(command, ok)
    stats.record(None, False)
    assert stats.summary() == "ehlo=1 rcpt=1/2 quit=1 commands=3/5"


def test_trigger_reaches_receiver_and_missing_receiver_is_ignored() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        path = Path(directory) / "qmgr.trigger"
        sender = TriggerSender(path)
        assert sender.send() is False  # nobody listens yet: ignored
        receiver = TriggerReceiver(path)
        assert sender.send(SCAN_INCOMING) and sender.send(FLUSH_DEFERRED)
        assert sender.send(SCAN_INCOMING)
        assert receiver.drain() == {SCAN_INCOMING, FLUSH_DEFERRED}
        assert receiver.drain() == set()
        receiver.close()
        assert not path.exists()
        assert sender.send() is False
        sender.close()
