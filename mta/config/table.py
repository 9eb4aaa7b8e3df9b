"""The one table of main.cf parameters: name, type, default, bounds and a one-line description.

    PARAMETERS["smtpd_timeout"].default == "300s"
    lookup("smtp_destination_concurrency_limit").default == "$default_destination_concurrency_limit"
    PARAMETERS["smtpd_timeout"].check("5x")   # ConfigError: smtpd_timeout = 5x: bad time value

Everything else derives from it: the built-in defaults (mta.config.maincf.BUILTIN_DEFAULTS),
validation of main.cf (mta.config.parameters.validate), `mta config -d` and docs/parameters.md
(reference_markdown(), written by `mta config --doc`). A parameter that a service reads must
have a row here; tests/config/test_table.py scans the source so a missing row fails CI.

Defaults are written as Postfix writes them, with $name references expanded when read. Where a
Postfix parameter exists its default is Postfix's, except where mta differs on purpose and the
description says so (mail_name, mail_owner, syslog_name, inet_interfaces, max_use, max_idle).
Per-transport parameters (`smtp_destination_concurrency_limit`) are not rows: lookup() derives
them from their `default_` row, with that parameter as their default, as Postfix does.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from mta.config.errors import ConfigError
from mta.config.values import (
    MAX_PARAMETER_NUMBER,
    check_directory,
    check_host_name,
    check_networks,
    check_one_line,
    check_text,
    check_transport,
    interface_addresses,
    parse_bool,
    parse_size,
    parse_time,
    table_references,
)


class ValueType(enum.StrEnum):
    """How a parameter's value is written; the value is what the documentation calls it."""

    TIME = "time"
    INTEGER = "integer"
    SIZE = "size in bytes"
    BOOLEAN = "yes or no"
    CHOICE = "one of"
    LIST = "list"
    TABLES = "lookup tables (type:name)"
    HOST_NAME = "host name"
    TRANSPORT = "transport[:nexthop]"
    NETWORKS = "network patterns"
    INTERFACES = "IP addresses, all or loopback-only"
    DIRECTORY = "directory"
    FILE = "file name or empty"
    LINE = "one line of text"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One main.cf parameter. `minimum`/`maximum` bound numbers (seconds for a TIME)."""

    name: str
    type: ValueType
    default: str
    description: str
    minimum: int = 0
    maximum: int = MAX_PARAMETER_NUMBER
    unit: str = "s"  # TIME: the unit of a bare number
    choices: tuple[str, ...] = ()
    host_dependent_default: str = ""  # what the documentation says instead of this host's value

    def check(self, value: str) -> None:
        """Raise ConfigError ("NAME = VALUE: why") unless value is good for this parameter."""
        _TYPE_CHECKS[self.type](self, value)

    def summary(self) -> str:
        """The type and bounds, for the documentation."""
        if self.type is ValueType.TIME:
            bare = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
            text = f"time (s, m, h, d, w; a bare number is in {bare[self.unit]})"
            return f"{text}, at least {self.minimum}s" if self.minimum else text
        if self.type in (ValueType.INTEGER, ValueType.SIZE):
            if self.maximum < MAX_PARAMETER_NUMBER:
                return f"{self.type.value}, {self.minimum} to {self.maximum}"
            return f"{self.type.value}, at least {self.minimum}"
        if self.type is ValueType.CHOICE:
            return f"one of {', '.join(self.choices)}"
        return self.type.value


def _check_time(parameter: Parameter, value: str) -> None:
    seconds = parse_time(value, parameter.name, parameter.unit, parameter.minimum)
    if seconds > parameter.maximum:
        raise ConfigError(f"{parameter.name} = {value}: more than {parameter.maximum}s")


def _check_number(parameter: Parameter, value: str) -> None:
    if parse_size(value, parameter.name, parameter.minimum) > parameter.maximum:
        raise ConfigError(f"{parameter.name} = {value}: more than {parameter.maximum}")


def _check_choice(parameter: Parameter, value: str) -> None:
    if value.strip() not in parameter.choices:
        raise ConfigError(
            f"{parameter.name} = {value}: expected one of {', '.join(parameter.choices)}"
        )


def _by_name(check: Callable[[str, str], object]) -> Callable[[Parameter, str], None]:
    def check_parameter(parameter: Parameter, value: str) -> None:
        check(value, parameter.name)

    return check_parameter


_TYPE_CHECKS: Mapping[ValueType, Callable[[Parameter, str], None]] = {
    ValueType.TIME: _check_time,
    ValueType.INTEGER: _check_number,
    ValueType.SIZE: _check_number,
    ValueType.BOOLEAN: _by_name(parse_bool),
    ValueType.CHOICE: _check_choice,
    ValueType.LIST: _by_name(check_text),
    ValueType.TABLES: _by_name(table_references),
    ValueType.HOST_NAME: _by_name(check_host_name),
    ValueType.TRANSPORT: _by_name(check_transport),
    ValueType.NETWORKS: _by_name(check_networks),
    ValueType.INTERFACES: _by_name(interface_addresses),
    ValueType.DIRECTORY: _by_name(check_directory),
    ValueType.FILE: _by_name(check_text),
    ValueType.LINE: _by_name(check_one_line),
    ValueType.TEXT: _by_name(check_text),
}


def _host_name() -> str:
    """This host's name without a DNS lookup; Postfix appends .localdomain to a bare name."""
    name = socket.gethostname().lower().rstrip(".")
    return name if "." in name else f"{name}.localdomain"


TIME, INTEGER, SIZE, BOOLEAN = ValueType.TIME, ValueType.INTEGER, ValueType.SIZE, ValueType.BOOLEAN
LIST, TABLES, TEXT, LINE = ValueType.LIST, ValueType.TABLES, ValueType.TEXT, ValueType.LINE


def _client_twins(
    suffix: str,
    kind: ValueType,
    default: str,
    description: str,
    *,
    lmtp_suffix: str = "",
    lmtp_default: str | None = None,
    **bounds: int | tuple[str, ...],
) -> tuple[Parameter, Parameter]:
    """The smtp_ row and its lmtp_ twin: Postfix's smtp(8) and lmtp(8) read the same set."""
    return (
        Parameter(f"smtp_{suffix}", kind, default, description, **bounds),  # type: ignore[arg-type]
        Parameter(
            f"lmtp_{lmtp_suffix or suffix}",
            kind,
            default if lmtp_default is None else lmtp_default,
            description.replace("SMTP", "LMTP").replace("EHLO", "LHLO"),
            **bounds,  # type: ignore[arg-type]
        ),
    )


TLS_LEVELS = ("", "none", "may", "encrypt", "dane", "dane-only", "verify", "secure")

# The SMTP and LMTP clients (mta.smtp, mta.agents.smtp), Postfix's names and defaults.
CLIENT_PARAMETERS: tuple[Parameter, ...] = (
    *_client_twins(
        "connect_timeout",
        TIME,
        "30s",
        "Time limit for a TCP connection to complete; 0: the system's own limit.",
        lmtp_default="0s",
    ),
    *_client_twins(
        "helo_timeout",
        TIME,
        "300s",
        "Time limit for the greeting and the reply to EHLO/HELO.",
        lmtp_suffix="lhlo_timeout",
    ),
    *_client_twins("mail_timeout", TIME, "300s", "Time limit for the reply to MAIL FROM."),
    *_client_twins("rcpt_timeout", TIME, "300s", "Time limit for the reply to RCPT TO."),
    *_client_twins("data_init_timeout", TIME, "120s", "Time limit for the reply to DATA."),
    *_client_twins(
        "data_xfer_timeout", TIME, "180s", "Time limit for sending a part of the content."
    ),
    *_client_twins(
        "data_done_timeout", TIME, "600s", "Time limit for the reply to the end of the content."
    ),
    *_client_twins(
        "starttls_timeout", TIME, "300s", "Time limit for STARTTLS and the TLS handshake."
    ),
    *_client_twins(
        "rset_timeout", TIME, "20s", "Time limit for RSET, sent to check a cached session."
    ),
    *_client_twins("quit_timeout", TIME, "300s", "Time limit for the reply to QUIT when awaited."),
    *_client_twins(
        "skip_quit_response",
        BOOLEAN,
        "yes",
        "Close after QUIT without waiting for its reply.",
        lmtp_default="no",
    ),
    *_client_twins(
        "helo_name",
        ValueType.HOST_NAME,
        "$myhostname",
        "Host name sent with EHLO/HELO.",
        lmtp_suffix="lhlo_name",
    ),
    *_client_twins(
        "line_length_limit",
        INTEGER,
        "998",
        "Longer content lines are folded (CRLF SPACE inserted); 0: no folding.",
    ),
    *_client_twins(
        "discard_ehlo_keywords",
        LIST,
        "",
        "EHLO keywords to ignore in a server's reply (chunking, pipelining, dsn, ...).",
        lmtp_suffix="discard_lhlo_keywords",
    ),
    *_client_twins(
        "mx_session_limit",
        INTEGER,
        "2",
        "Sessions one delivery may open (hosts that greeted) before it gives up.",
        minimum=1,
    ),
    *_client_twins(
        "connection_reuse_count_limit",
        INTEGER,
        "0",
        "Times a cached SMTP session may be reused; 0: no count limit.",
    ),
    *_client_twins(
        "connection_reuse_time_limit",
        TIME,
        "300s",
        "Age after which an SMTP session is no longer reused.",
        minimum=1,
    ),
    *_client_twins(
        "connection_cache_time_limit",
        TIME,
        "2s",
        "Time an unused SMTP session waits in the connection cache.",
        minimum=1,
    ),
    *_client_twins(
        "connection_cache_limit",
        INTEGER,
        "1000",
        "Idle SMTP sessions one agent process keeps open in all (mta only).",
    ),
    *_client_twins(
        "reply_line_limit",
        INTEGER,
        "2048",
        "Longest SMTP reply line read from a server (mta only; Postfix: line_length_limit).",
        minimum=512,
        maximum=1_000_000,
    ),
    *_client_twins(
        "reply_max_lines",
        INTEGER,
        "100",
        "Lines of one SMTP reply, EHLO keywords included; more: the reply is malformed (mta only).",
        minimum=10,
        maximum=100_000,
    ),
    *_client_twins(
        "reply_backlog_limit",
        INTEGER,
        "100",
        "Reply lines a server may send ahead unread before the client stops reading (mta only).",
        minimum=10,
        maximum=100_000,
    ),
    *_client_twins(
        "tls_security_level",
        ValueType.CHOICE,
        "",
        "SMTP TLS level: none (empty), may, encrypt, dane, dane-only, verify, secure.",
        choices=TLS_LEVELS,
    ),
    *_client_twins(
        "tls_policy_maps", TABLES, "", "SMTP TLS policy per next hop (level and match=...)."
    ),
    *_client_twins(
        "tls_CAfile", ValueType.FILE, "", "CA certificates for verify/secure; empty: system's."
    ),
    *_client_twins(
        "tls_CApath", ValueType.FILE, "", "Directory of CA certificates for verify/secure."
    ),
    *_client_twins(
        "tls_verify_cert_match",
        LIST,
        "hostname",
        "Certificate names accepted at level verify (hostname, nexthop, dot-nexthop, names).",
    ),
    *_client_twins(
        "tls_secure_cert_match",
        LIST,
        "nexthop, dot-nexthop",
        "Certificate names accepted at level secure.",
    ),
    *_client_twins(
        "tls_loglevel",
        INTEGER,
        "1",
        "1: log each TLS connection with its protocol and cipher; 0: do not (Postfix: 0).",
        maximum=4,
    ),
    *_client_twins(
        "tls_scert_verifydepth",
        INTEGER,
        "9",
        "Certificates above the server's own that a DANE-TA chain check looks at.",
        minimum=1,
        maximum=100,
    ),
)

TABLE: tuple[Parameter, ...] = (
    # -- where things are -------------------------------------------------------------------
    Parameter(
        "base_directory",
        ValueType.DIRECTORY,
        "mta-data",
        "Directory under which the queue and data directories live by default (mta only).",
    ),
    Parameter(
        "queue_directory",
        ValueType.DIRECTORY,
        "$base_directory/queue",
        "Directory of the LMDB mail queue.",
    ),
    Parameter(
        "data_directory",
        ValueType.DIRECTORY,
        "$base_directory/data",
        "Directory of the master's pid and status files and local mailboxes.",
    ),
    Parameter(
        "queue_sync",
        ValueType.CHOICE,
        "full",
        "full: the queue is on disk before mail is acknowledged; unsafe: RAM-disk benchmarks only.",
        choices=("full", "unsafe"),
    ),
    Parameter(
        "queue_map_size",
        SIZE,
        "67108864",
        "Initial size of the queue's LMDB map; it grows up to queue_max_size.",
        minimum=1048576,
    ),
    Parameter(
        "queue_max_size",
        SIZE,
        "17179869184",
        "Largest size of the queue's LMDB map; past it mail is refused with a 4xx reply.",
        minimum=1048576,
    ),
    # -- who we are -------------------------------------------------------------------------
    Parameter(
        "myhostname",
        ValueType.HOST_NAME,
        _host_name(),
        "Fully qualified name of this host, in the banner, EHLO reply and Received header.",
        host_dependent_default="this host's name; .localdomain appended to a bare name",
    ),
    Parameter(
        "mydomain",
        ValueType.HOST_NAME,
        _host_name().partition(".")[2],
        "Domain of this host; used in other parameters' defaults.",
        host_dependent_default="$myhostname without its first label",
    ),
    Parameter(
        "myorigin",
        ValueType.HOST_NAME,
        "$myhostname",
        "Domain that locally posted mail appears to come from.",
    ),
    Parameter(
        "mail_name",
        LINE,
        "mta",
        "Program name in the SMTP banner and Received header (Postfix: Postfix).",
    ),
    Parameter(
        "mail_owner",
        LINE,
        "mta",
        "Unprivileged account the daemons run as when started as root (Postfix: postfix).",
    ),
    Parameter(
        "syslog_name",
        LINE,
        "mta",
        "Name in front of every log line (Postfix: postfix).",
    ),
    Parameter(
        "maillog_file",
        ValueType.FILE,
        "",
        "File the master logs to instead of syslog; empty: syslog.",
    ),
    # -- what mail is ours, and how it travels ----------------------------------------------
    Parameter(
        "inet_interfaces",
        ValueType.INTERFACES,
        "127.0.0.1",
        "Addresses inet services listen on without a host in master.cf (Postfix: all).",
    ),
    Parameter(
        "mynetworks",
        ValueType.NETWORKS,
        "127.0.0.0/8 [::1]/128",
        "Trusted clients that may relay: network/mask patterns, host names, files, tables.",
    ),
    Parameter(
        "mydestination",
        LIST,
        "$myhostname, localhost.$mydomain, localhost",
        "Domains delivered by local_transport.",
    ),
    Parameter(
        "relay_domains",
        LIST,
        "",
        "Domains that are not ours but that we relay to, by relay_transport.",
    ),
    Parameter(
        "virtual_alias_domains",
        LIST,
        "$virtual_alias_maps",
        "Domains whose every address is an alias in virtual_alias_maps; others are rejected.",
    ),
    Parameter(
        "virtual_mailbox_domains",
        LIST,
        "$virtual_mailbox_maps",
        "Domains delivered by virtual_transport to mailboxes in virtual_mailbox_maps.",
    ),
    Parameter(
        "virtual_mailbox_maps",
        TABLES,
        "",
        "Tables of the mailboxes of virtual_mailbox_domains, keyed by address.",
    ),
    Parameter(
        "local_transport",
        ValueType.TRANSPORT,
        "local:$myhostname",
        "Transport for mail to mydestination and the addresses of inet_interfaces.",
    ),
    Parameter(
        "virtual_transport",
        ValueType.TRANSPORT,
        "virtual",
        "Transport for mail to virtual_mailbox_domains.",
    ),
    Parameter(
        "relay_transport",
        ValueType.TRANSPORT,
        "relay",
        "Transport for mail to relay_domains.",
    ),
    Parameter(
        "default_transport",
        ValueType.TRANSPORT,
        "smtp",
        "Transport for mail to every other domain.",
    ),
    Parameter(
        "relayhost",
        TEXT,
        "",
        "Next hop for mail to other domains; empty: deliver by the domain's MX.",
    ),
    Parameter(
        "transport_maps",
        TABLES,
        "",
        "Tables that map a recipient address or domain to transport:nexthop.",
    ),
    # -- address rewriting (ADDRESS_REWRITING_README) ---------------------------------------
    Parameter(
        "canonical_maps",
        TABLES,
        "",
        "Tables that rewrite sender and recipient addresses, in envelope and headers.",
    ),
    Parameter(
        "sender_canonical_maps",
        TABLES,
        "",
        "Tables that rewrite sender addresses, before canonical_maps.",
    ),
    Parameter(
        "recipient_canonical_maps",
        TABLES,
        "",
        "Tables that rewrite recipient addresses, before canonical_maps.",
    ),
    Parameter(
        "canonical_classes",
        LIST,
        "envelope_sender, envelope_recipient, header_sender, header_recipient",
        "Which addresses canonical_maps rewrites.",
    ),
    Parameter(
        "sender_canonical_classes",
        LIST,
        "envelope_sender, header_sender",
        "Which addresses sender_canonical_maps rewrites.",
    ),
    Parameter(
        "recipient_canonical_classes",
        LIST,
        "envelope_recipient, header_recipient",
        "Which addresses recipient_canonical_maps rewrites.",
    ),
    Parameter(
        "virtual_alias_maps",
        TABLES,
        "$virtual_maps",
        "Tables that redirect recipients to one or more other addresses, recursively.",
    ),
    Parameter(
        "virtual_maps",
        TABLES,
        "",
        "Old name of virtual_alias_maps, kept as its default.",
    ),
    Parameter(
        "virtual_alias_expansion_limit",
        INTEGER,
        "1000",
        "Most addresses one recipient may expand to through virtual_alias_maps.",
        minimum=1,
    ),
    Parameter(
        "virtual_alias_recursion_limit",
        INTEGER,
        "1000",
        "Deepest nesting of virtual_alias_maps expansion.",
        minimum=1,
    ),
    Parameter(
        "masquerade_domains",
        LIST,
        "",
        "Domains whose subdomains are hidden: user@host.example.com becomes user@example.com.",
    ),
    Parameter(
        "masquerade_exceptions",
        LIST,
        "",
        "Local parts (such as root) that are never masqueraded.",
    ),
    Parameter(
        "masquerade_classes",
        LIST,
        "envelope_sender, header_sender, header_recipient",
        "Which addresses masquerade_domains rewrites.",
    ),
    Parameter(
        "append_at_myorigin",
        BOOLEAN,
        "yes",
        "Append @$myorigin to an address without a domain.",
    ),
    Parameter(
        "append_dot_mydomain",
        BOOLEAN,
        "no",
        "Append .$mydomain to a domain without a dot (Postfix 3.0 and later default).",
    ),
    Parameter(
        "swap_bangpath",
        BOOLEAN,
        "yes",
        "Rewrite UUCP-style site!user into user@site.",
    ),
    Parameter(
        "allow_percent_hack",
        BOOLEAN,
        "yes",
        "Rewrite user%domain into user@domain.",
    ),
    Parameter(
        "recipient_delimiter",
        TEXT,
        "",
        "Characters that separate a user name from an address extension (user+ext).",
    ),
    Parameter(
        "propagate_unmatched_extensions",
        LIST,
        "canonical, virtual",
        "Lookups that carry an address extension over to the address they return.",
    ),
    Parameter(
        "local_header_rewrite_clients",
        LIST,
        "permit_inet_interfaces",
        "Clients whose message headers are rewritten to complete addresses.",
    ),
    Parameter(
        "remote_header_rewrite_domain",
        TEXT,
        "",
        "Domain appended to incomplete header addresses from other clients; empty: none.",
    ),
    # -- content checks ---------------------------------------------------------------------
    Parameter(
        "content_filter",
        ValueType.TEXT,
        "",
        "transport:nexthop that qmgr delivers all mail received by smtpd to (empty: none).",
    ),
    Parameter(
        "header_checks",
        TABLES,
        "",
        "Pattern tables applied to each primary message header.",
    ),
    Parameter(
        "mime_header_checks",
        TABLES,
        "$header_checks",
        "Pattern tables applied to MIME headers of each message part.",
    ),
    Parameter(
        "nested_header_checks",
        TABLES,
        "$header_checks",
        "Pattern tables applied to the headers of attached messages.",
    ),
    Parameter(
        "body_checks",
        TABLES,
        "",
        "Pattern tables applied to each body line.",
    ),
    Parameter(
        "body_checks_size_limit",
        SIZE,
        "51200",
        "Bytes of each body part that body_checks looks at.",
    ),
    Parameter(
        "header_size_limit",
        SIZE,
        "102400",
        "Bytes of one logical message header kept and inspected; the excess is discarded.",
        minimum=1,
    ),
    Parameter(
        "mime_nesting_limit",
        INTEGER,
        "100",
        "Multipart and attached-message levels the MIME walker of content checks follows.",
        minimum=1,
    ),
    # -- smtpd ------------------------------------------------------------------------------
    Parameter(
        "smtpd_banner",
        LINE,
        "$myhostname ESMTP $mail_name",
        "Text after 220 in the SMTP greeting.",
    ),
    Parameter(
        "message_size_limit",
        SIZE,
        "10240000",
        "Largest message content accepted; smtpd refuses 0 (Postfix: no limit).",
    ),
    Parameter(
        "smtpd_recipient_limit",
        INTEGER,
        "1000",
        "Most recipients in one SMTP transaction; 0: no limit.",
    ),
    Parameter(
        "smtpd_hard_error_limit",
        INTEGER,
        "20",
        "Error replies in one session before the server says 421 and disconnects.",
        minimum=1,
    ),
    Parameter(
        "smtpd_timeout",
        TIME,
        "300s",
        "Idle time for an SMTP client before 421 and disconnect.",
        minimum=1,
    ),
    Parameter(
        "smtpd_forbid_bare_newline",
        ValueType.CHOICE,
        "yes",
        "yes: a bare LF gets 521 and ends the session; normal or no: it ends a line.",
        choices=("yes", "normal", "no"),
    ),
    Parameter(
        "disable_vrfy_command",
        BOOLEAN,
        "no",
        "yes: VRFY gets 502 and is not advertised.",
    ),
    Parameter(
        "smtpd_worker_session_limit",
        INTEGER,
        "10000",
        "SMTP sessions one smtpd worker holds; more get 421 at once (mta only).",
        minimum=1,
    ),
    Parameter(
        "smtpd_shutdown_timeout",
        TIME,
        "10s",
        "How long a stopping smtpd worker lets sessions finish (mta only).",
        minimum=1,
    ),
    # -- qmgr -------------------------------------------------------------------------------
    Parameter(
        "queue_run_delay",
        TIME,
        "300s",
        "How often the deferred queue is scanned.",
        minimum=1,
    ),
    Parameter(
        "qmgr_message_active_limit",
        INTEGER,
        "20000",
        "Most messages in the active queue at once.",
        minimum=1,
    ),
    Parameter(
        "qmgr_message_recipient_limit",
        INTEGER,
        "20000",
        "Most recipients of active messages in qmgr's memory; more mail waits in its queue.",
        minimum=1,
    ),
    Parameter(
        "qmgr_intake_batch_limit",
        INTEGER,
        "500",
        "Messages qmgr takes into the active queue per intake (mta only).",
        minimum=1,
    ),
    Parameter(
        "qmgr_commit_delay",
        INTEGER,
        "10",
        "Milliseconds qmgr gathers queue changes before committing them together (mta only).",
    ),
    Parameter(
        "qmgr_commit_batch_limit",
        INTEGER,
        "500",
        "Queue changes after which qmgr commits before qmgr_commit_delay is up (mta only).",
        minimum=1,
    ),
    Parameter(
        "minimal_backoff_time",
        TIME,
        "300s",
        "First retry interval of a deferred recipient; it doubles per attempt.",
        minimum=1,
    ),
    Parameter(
        "maximal_backoff_time",
        TIME,
        "4000s",
        "Longest retry interval of a deferred recipient.",
        minimum=1,
    ),
    Parameter(
        "maximal_queue_lifetime",
        TIME,
        "5d",
        "Age after which undeliverable mail is returned to the sender.",
        unit="d",
    ),
    Parameter(
        "bounce_queue_lifetime",
        TIME,
        "5d",
        "Age after which an undeliverable bounce is discarded.",
        unit="d",
    ),
    # -- delivery status notifications (mta.bounce) ------------------------------------------
    Parameter(
        "bounce_size_limit",
        SIZE,
        "50000",
        "Largest original returned whole in a notice (RET=FULL); past it, headers only.",
    ),
    Parameter(
        "delay_warning_time",
        TIME,
        "0h",
        "Age of deferred mail at which the sender is warned once; 0: no warnings.",
        unit="h",
    ),
    Parameter(
        "notify_classes",
        LIST,
        "resource, software",
        "Problems reported to the postmaster: bounce, 2bounce, delay, resource, software, ...",
    ),
    Parameter(
        "bounce_notice_recipient",
        LINE,
        "postmaster",
        "Recipient of the postmaster copies of bounces (notify_classes bounce).",
    ),
    Parameter(
        "2bounce_notice_recipient",
        LINE,
        "postmaster",
        "Recipient of undeliverable bounces (notify_classes 2bounce or bounce).",
    ),
    Parameter(
        "delay_notice_recipient",
        LINE,
        "postmaster",
        "Recipient of the postmaster copies of delay warnings (notify_classes delay).",
    ),
    Parameter(
        "error_notice_recipient",
        LINE,
        "postmaster",
        "Recipient of resource and software problem notices (notify_classes).",
    ),
    Parameter(
        "double_bounce_sender",
        LINE,
        "double-bounce",
        "Sender of postmaster notices; such mail that fails is discarded, never returned.",
    ),
    Parameter(
        "transport_retry_time",
        TIME,
        "60s",
        "How long a transport or destination that failed is left alone.",
        minimum=1,
    ),
    Parameter(
        "delivery_agent_crash_retry_time",
        TIME,
        "10s",
        "Retry delay of recipients whose delivery agent died mid-request (mta only).",
        minimum=1,
    ),
    Parameter(
        "default_destination_concurrency_limit",
        INTEGER,
        "20",
        "Parallel deliveries to one destination; TRANSPORT_destination_concurrency_limit.",
        minimum=1,
    ),
    Parameter(
        "initial_destination_concurrency",
        INTEGER,
        "5",
        "Parallel deliveries to a destination before slow start raises them.",
        minimum=1,
    ),
    Parameter(
        "default_destination_recipient_limit",
        INTEGER,
        "50",
        "Recipients per delivery request; TRANSPORT_destination_recipient_limit.",
        minimum=1,
    ),
    Parameter(
        "local_destination_recipient_limit",
        INTEGER,
        "1",
        "Recipients per local delivery request; 1: each recipient is a destination of its own.",
        minimum=1,
    ),
    Parameter(
        "local_destination_concurrency_limit",
        INTEGER,
        "2",
        "Parallel local deliveries to one recipient (with a local recipient limit of 1).",
        minimum=1,
    ),
    Parameter(
        "default_destination_concurrency_failed_cohort_limit",
        INTEGER,
        "1",
        "Failed pseudo-cohorts (windows of deliveries) before a destination is dead; 0: never.",
    ),
    Parameter(
        "default_destination_rate_delay",
        TIME,
        "0s",
        "Pause between deliveries to one destination, then one at a time; 0s: no pause.",
    ),
    Parameter(
        "default_transport_rate_delay",
        TIME,
        "0s",
        "Pause between deliveries over one transport, then one at a time; 0s: no pause.",
    ),
    # -- smtp client: DNS (mta.dns) ---------------------------------------------------------
    Parameter(
        "inet_protocols",
        ValueType.CHOICE,
        "all",
        "Address families the SMTP client looks up and connects to.",
        choices=("all", "ipv4", "ipv6", "ipv4, ipv6", "ipv6, ipv4"),
    ),
    Parameter(
        "smtp_address_preference",
        ValueType.CHOICE,
        "any",
        "Family tried first among a host's addresses; any: random order.",
        choices=("any", "ipv4", "ipv6"),
    ),
    Parameter(
        "smtp_mx_address_limit",
        INTEGER,
        "5",
        "Most addresses the SMTP client tries for one destination; 0: no limit.",
    ),
    Parameter(
        "smtp_dns_resolver_address",
        LIST,
        "",
        "Name server addresses for MX/A/AAAA lookups; empty: /etc/resolv.conf (mta only).",
    ),
    Parameter(
        "smtp_dns_resolver_port",
        INTEGER,
        "53",
        "Port of smtp_dns_resolver_address (mta only).",
        minimum=1,
        maximum=65535,
    ),
    Parameter(
        "smtp_dns_resolver_timeout",
        TIME,
        "10s",
        "Time limit for one DNS lookup, all retries included (mta only).",
        minimum=1,
    ),
    Parameter(
        "smtp_dns_cache_size",
        INTEGER,
        "1000",
        "DNS answers the SMTP client keeps until their TTL ends; 0: no cache (mta only).",
        maximum=1000000,
    ),
    Parameter(
        "smtp_dns_support_level",
        ValueType.CHOICE,
        "",
        "SMTP client DNS: disabled (no MX, native lookups), enabled (empty), dnssec (AD bit).",
        choices=("", "disabled", "enabled", "dnssec"),
    ),
    *CLIENT_PARAMETERS,
    # -- master -----------------------------------------------------------------------------
    Parameter(
        "default_process_limit",
        INTEGER,
        "100",
        "Processes per service when master.cf's maxproc is -; a transport's deliveries at once.",
        minimum=1,
    ),
    Parameter(
        "master_stop_timeout",
        TIME,
        "30s",
        "How long the master waits for services to stop before killing them (mta only).",
        minimum=1,
    ),
    Parameter(
        "max_use",
        INTEGER,
        "0",
        "Connections a service process handles before it exits; 0: no limit (Postfix: 100).",
    ),
    Parameter(
        "max_idle",
        TIME,
        "0",
        "Idle time after which a service process exits; 0: never (Postfix: 100s).",
    ),
)

PARAMETERS: Mapping[str, Parameter] = {parameter.name: parameter for parameter in TABLE}

# Suffixes of per-transport parameters and the parameter each falls back to, as in Postfix:
# smtp_destination_concurrency_limit defaults to $default_destination_concurrency_limit,
# smtp_initial_destination_concurrency to $initial_destination_concurrency. qmgr reads them
# for each transport.
PER_TRANSPORT_DEFAULTS: Mapping[str, str] = {
    "destination_concurrency_limit": "default_destination_concurrency_limit",
    "destination_recipient_limit": "default_destination_recipient_limit",
    "initial_destination_concurrency": "initial_destination_concurrency",
    "destination_concurrency_failed_cohort_limit": (
        "default_destination_concurrency_failed_cohort_limit"
    ),
    "destination_rate_delay": "default_destination_rate_delay",
    "transport_rate_delay": "default_transport_rate_delay",
}


def lookup(name: str) -> Parameter | None:
    """The table row for `name`, a derived row for a per-transport parameter, or None."""
    parameter = PARAMETERS.get(name)
    if parameter is not None:
        return parameter
    for suffix, general_name in PER_TRANSPORT_DEFAULTS.items():
        transport = name.removesuffix(f"_{suffix}")
        if transport != name and transport:
            general = PARAMETERS[general_name]
            return replace(
                general,
                name=name,
                default=f"${general.name}",
                description=f"{general.name} for the {transport} transport.",
            )
    return None


def reference_markdown() -> str:
    """docs/parameters.md: every parameter with its default, type, bounds and description."""
    lines = [
        "# main.cf parameters",
        "",
        "Generated from `mta/config/table.py` by `mta config --doc > docs/parameters.md`;",
        "edit the table, not this file. `$name` in a default refers to another parameter.",
        "Per-transport parameters (`TRANSPORT_destination_concurrency_limit`,",
        "`TRANSPORT_destination_recipient_limit`, `TRANSPORT_initial_destination_concurrency`,",
        "`TRANSPORT_destination_concurrency_failed_cohort_limit`,",
        "`TRANSPORT_destination_rate_delay`, `TRANSPORT_transport_rate_delay`) default to the",
        "general parameter of the same suffix.",
        "",
        "| Parameter | Default | Type | Description |",
        "|---|---|---|---|",
    ]
    for parameter in sorted(TABLE, key=lambda row: row.name):
        if parameter.host_dependent_default:
            default = f"({parameter.host_dependent_default})"
        elif parameter.default:
            default = f"`{parameter.default}`"
        else:
            default = "(empty)"
        cells = (f"`{parameter.name}`", default, parameter.summary(), parameter.description)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
