"""The parameter table: every parameter the code reads has a row; Postfix's have its defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mta
from mta.config.errors import ConfigError
from mta.config.maincf import BUILTIN_DEFAULTS
from mta.config.table import PARAMETERS, TABLE, ValueType, lookup

SOURCE = Path(mta.__file__).parent

# settings.get("name"), settings.path("name"), the readers that take the settings first
# (number(settings, "name"), duration(self.source, "name"), word_list(config.settings, "name")),
# and a bare get("name") where a function was handed settings.get.
READS = re.compile(
    r"""(?:settings|source)\.(?:get|path)\(\s*"([a-z0-9_]+)"
      | (?<![.\w])get\(\s*"([a-z0-9_]+)"
      | \b[a-z_]+\(\s*[a-z_.]*(?:settings|source),\s*"([a-z0-9_]+)"
    """,
    re.VERBOSE,
)
# QueueSettings.from_parameters reads these through a get callable, some by a variable name.
QUEUE_STORE_PARAMETERS = {"queue_sync", "queue_map_size", "queue_max_size"}


def parameters_read_by_the_code() -> dict[str, str]:
    """Parameter name -> the first file that reads it."""
    found: dict[str, str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for match in READS.finditer(path.read_text()):
            name = next(group for group in match.groups() if group)
            found.setdefault(name, str(path.relative_to(SOURCE.parent)))
    return found


def test_the_scan_finds_what_services_read() -> None:
    read = parameters_read_by_the_code()
    for name in ("smtpd_timeout", "mynetworks", "master_stop_timeout", "myorigin", "syslog_name"):
        assert name in read


def test_every_parameter_the_code_reads_has_a_table_row() -> None:
    read = parameters_read_by_the_code()
    missing = {name: where for name, where in read.items() if lookup(name) is None}
    assert missing == {}, "add these parameters to mta/config/table.py"
    assert set(PARAMETERS) >= QUEUE_STORE_PARAMETERS


def test_builtin_defaults_are_the_table() -> None:
    assert dict(BUILTIN_DEFAULTS) == {row.name: row.default for row in TABLE}
    assert len(PARAMETERS) == len(TABLE), "a parameter has two rows"


# Postfix's defaults (postconf -d, Postfix 3.x at compatibility_level 3.6) for parameters whose
# meaning we share.
POSTFIX_DEFAULTS = {
    "canonical_maps": "",
    "sender_canonical_maps": "",
    "recipient_canonical_maps": "",
    "canonical_classes": "envelope_sender, envelope_recipient, header_sender, header_recipient",
    "sender_canonical_classes": "envelope_sender, header_sender",
    "recipient_canonical_classes": "envelope_recipient, header_recipient",
    "virtual_alias_maps": "$virtual_maps",
    "virtual_alias_domains": "$virtual_alias_maps",
    "virtual_alias_expansion_limit": "1000",
    "virtual_alias_recursion_limit": "1000",
    "virtual_mailbox_domains": "$virtual_mailbox_maps",
    "virtual_mailbox_maps": "",
    "virtual_transport": "virtual",
    "masquerade_domains": "",
    "masquerade_exceptions": "",
    "masquerade_classes": "envelope_sender, header_sender, header_recipient",
    "append_at_myorigin": "yes",
    "append_dot_mydomain": "no",
    "swap_bangpath": "yes",
    "allow_percent_hack": "yes",
    "transport_maps": "",
    "recipient_delimiter": "",
    "propagate_unmatched_extensions": "canonical, virtual",
    "local_header_rewrite_clients": "permit_inet_interfaces",
    "remote_header_rewrite_domain": "",
    "header_checks": "",
    "mime_header_checks": "$header_checks",
    "nested_header_checks": "$header_checks",
    "body_checks": "",
    "body_checks_size_limit": "51200",
    "header_size_limit": "102400",
    "mime_nesting_limit": "100",
    "myorigin": "$myhostname",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "relay_domains": "",
    "relayhost": "",
    "local_transport": "local:$myhostname",
    "relay_transport": "relay",
    "default_transport": "smtp",
    "smtpd_banner": "$myhostname ESMTP $mail_name",
    "message_size_limit": "10240000",
    "smtpd_recipient_limit": "1000",
    "smtpd_timeout": "300s",
    "disable_vrfy_command": "no",
    "queue_run_delay": "300s",
    "qmgr_message_active_limit": "20000",
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "4000s",
    "maximal_queue_lifetime": "5d",
    "bounce_queue_lifetime": "5d",
    "transport_retry_time": "60s",
    "default_destination_concurrency_limit": "20",
    "initial_destination_concurrency": "5",
    "default_destination_recipient_limit": "50",
    "default_destination_concurrency_failed_cohort_limit": "1",
    "default_destination_rate_delay": "0s",
    "default_transport_rate_delay": "0s",
    "qmgr_message_recipient_limit": "20000",
    "local_destination_recipient_limit": "1",
    "local_destination_concurrency_limit": "2",
    "default_process_limit": "100",
}


@pytest.mark.parametrize("name", sorted(POSTFIX_DEFAULTS))
def test_default_is_postfixs(name: str) -> None:
    assert PARAMETERS[name].default == POSTFIX_DEFAULTS[name]


def test_every_row_has_a_one_line_description() -> None:
    for row in TABLE:
        assert row.description.endswith(".") and "\n" not in row.description, row.name
        assert len(row.description) <= 100, row.name


def test_per_transport_parameters_default_to_their_general_one() -> None:
    row = lookup("smtp_destination_concurrency_limit")
    assert row is not None
    assert row.default == "$default_destination_concurrency_limit"
    assert row.type is ValueType.INTEGER and row.minimum == 1
    assert lookup("_destination_recipient_limit") is None
    rate = lookup("slow_destination_rate_delay")
    assert rate is not None and rate.default == "$default_destination_rate_delay"
    initial = lookup("smtp_initial_destination_concurrency")
    assert initial is not None and initial.default == "$initial_destination_concurrency"
    assert lookup("smtpd_timeout_typo") is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("virtual_alias_maps", "hash:/etc/virtual bogus", "expected type:name lookup tables"),
        ("smtpd_timeout", "0", "time value out of range"),
        ("queue_sync", "sometimes", "expected one of full, unsafe"),
        ("append_at_myorigin", "maybe", "bad boolean value"),
    ],
)
def test_row_checks_refuse_bad_values(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} = {re.escape(value)}: {message}"):
        PARAMETERS[name].check(value)


def test_table_lists_accept_postfix_forms() -> None:
    PARAMETERS["virtual_alias_maps"].check(
        "lmdb:/etc/mta/virtual, inline:{ a@example.com=b@example.com, c=d } regexp:/etc/re"
    )
    # A braced item keeps its spaces and commas (Postfix 3.0's inline: syntax), as the
    # tables themselves read it.
    PARAMETERS["transport_maps"].check("inline:{ { x.test = error:5.1.1 no, such user } }")
    PARAMETERS["header_checks"].check("")
