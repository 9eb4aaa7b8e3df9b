"""The parameters of one client, smtp_* (smtp, relay) or lmtp_* (lmtp), read once at start.

    ClientSettings.from_settings(settings, Protocol.LMTP).timeouts.data_done == 600.0

Postfix reads the same set of parameters with an smtp_ or an lmtp_ prefix depending on how the
program was started; so do we (the twins are rows of mta.config.table). A timeout of 0 means
"no limit of ours" (Postfix: lmtp_connect_timeout = 0s, the system's own connect time limit).

Parameters: *_connect_timeout, *_helo_timeout (lmtp_lhlo_timeout), *_mail_timeout,
*_rcpt_timeout, *_data_init_timeout, *_data_xfer_timeout, *_data_done_timeout,
*_starttls_timeout, *_rset_timeout, *_quit_timeout, *_skip_quit_response, *_helo_name
(lmtp_lhlo_name), *_line_length_limit, *_discard_ehlo_keywords (lmtp_discard_lhlo_keywords),
*_mx_session_limit, *_connection_reuse_count_limit, *_connection_reuse_time_limit,
*_connection_cache_time_limit, *_connection_cache_limit, *_reply_line_limit,
*_reply_max_lines (EHLO keywords too), *_reply_backlog_limit, and the TLS ones of
mta.smtp.tls.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mta.config.maincf import Settings
from mta.config.values import boolean, duration, number, parse_list

REPLY_LINE_LIMIT = 2048  # *_reply_line_limit: Postfix's line_length_limit for what it reads
REPLY_MAX_LINES = 100  # *_reply_max_lines, hence EHLO keywords: far more than servers send
REPLY_BACKLOG = 100  # *_reply_backlog_limit: reply lines queued unread before reading pauses


class Protocol(enum.StrEnum):
    SMTP = "smtp"
    LMTP = "lmtp"

    @property
    def hello(self) -> str:
        return "LHLO" if self is Protocol.LMTP else "EHLO"

    @property
    def default_port(self) -> int:
        return 24 if self is Protocol.LMTP else 25


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds for each step of a session; 0: none of ours."""

    connect: float = 30.0
    helo: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_xfer: float = 180.0
    data_done: float = 600.0
    starttls: float = 300.0
    rset: float = 20.0
    quit: float = 300.0


@dataclass(frozen=True, slots=True)
class ReuseLimits:
    """Postfix's connection cache limits, and a bound on the sessions one process keeps."""

    count: int = 0
    """Transactions per session; 0: no count limit (the time limit still applies)."""
    time: float = 300.0
    """Seconds since the session was opened after which it is not reused."""
    idle: float = 2.0
    """Seconds an unused session waits in the cache (smtp_connection_cache_time_limit)."""
    sessions: int = 1000
    """Idle sessions one process keeps in all (mta only)."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    protocol: Protocol = Protocol.SMTP
    helo_name: str = "localhost"
    timeouts: Timeouts = Timeouts()
    line_length_limit: int = 998
    skip_quit_response: bool = True
    discard_ehlo_keywords: frozenset[str] = frozenset()
    mx_session_limit: int = 2
    reuse: ReuseLimits = ReuseLimits()
    reply_line_limit: int = REPLY_LINE_LIMIT
    reply_max_lines: int = REPLY_MAX_LINES
    reply_backlog: int = REPLY_BACKLOG

    @classmethod
    def from_settings(cls, settings: Settings, protocol: Protocol) -> ClientSettings:
        p = protocol.value
        lmtp = protocol is Protocol.LMTP
        hello = "lhlo" if lmtp else "helo"

        def seconds(name: str) -> float:
            return duration(settings, f"{p}_{name}", minimum=0)

        timeouts = Timeouts(
            connect=seconds("connect_timeout"),
            helo=seconds(f"{hello}_timeout"),
            mail=seconds("mail_timeout"),
            rcpt=seconds("rcpt_timeout"),
            data_init=seconds("data_init_timeout"),
            data_xfer=seconds("data_xfer_timeout"),
            data_done=seconds("data_done_timeout"),
            starttls=seconds("starttls_timeout"),
            rset=seconds("rset_timeout"),
            quit=seconds("quit_timeout"),
        )
        reuse = ReuseLimits(
            count=number(settings, f"{p}_connection_reuse_count_limit"),
            time=seconds("connection_reuse_time_limit"),
            idle=seconds("connection_cache_time_limit"),
            sessions=number(settings, f"{p}_connection_cache_limit"),
        )
        keywords = parse_list(settings.get(f"{p}_discard_{hello if lmtp else 'ehlo'}_keywords"))
        return cls(
            protocol=protocol,
            helo_name=settings.get(f"{p}_{hello}_name").strip(),
            timeouts=timeouts,
            line_length_limit=number(settings, f"{p}_line_length_limit"),
            skip_quit_response=boolean(settings, f"{p}_skip_quit_response"),
            discard_ehlo_keywords=frozenset(word.upper() for word in keywords),
            mx_session_limit=number(settings, f"{p}_mx_session_limit", minimum=1),
            reuse=reuse,
            reply_line_limit=number(settings, f"{p}_reply_line_limit", minimum=512),
            reply_max_lines=number(settings, f"{p}_reply_max_lines", minimum=10),
            reply_backlog=number(settings, f"{p}_reply_backlog_limit", minimum=10),
        )
