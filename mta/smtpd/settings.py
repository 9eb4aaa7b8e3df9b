"""smtpd's main.cf parameters, read once and checked: a wrong value is a ConfigError naming it.

Parameters (defaults in mta.config.maincf.BUILTIN_DEFAULTS):
  myhostname (this host's name)          the name in the banner, EHLO reply and 421 replies
  mail_name (mta)                        the program name in the Received header
  smtpd_banner ($myhostname ESMTP $mail_name)  the text of the 220 greeting
  message_size_limit (10240000)          content octets per message (at least 1: every
                                         input has a bound, so Postfix's 0 is refused)
  smtpd_recipient_limit (1000)           recipients per transaction; 0 means no limit
  smtpd_hard_error_limit (20)            4xx/5xx replies in a session before 421 and close
  smtpd_timeout (300s)                   idle time before 421 4.4.2 and close
  smtpd_forbid_bare_newline (yes)        yes: a bare LF gets 521 and the session ends;
                                         normal or no: a bare LF ends a command line and
                                         passes unchanged through content
  disable_vrfy_command (no)              yes: VRFY gets 502 5.5.1 and is not advertised
  smtpd_worker_session_limit (10000)     sessions one worker holds; more get 421 at once
  smtpd_shutdown_timeout (10s)           how long a stopping worker lets sessions finish
  content_filter (empty)                 transport:nexthop recorded as every message's filter:
                                         qmgr delivers it there (a FILTER action wins)
  header_checks, mime_header_checks, nested_header_checks, body_checks and their limits:
                                         content checks (mta.cleanup) of every message
"""

from __future__ import annotations

from dataclasses import dataclass

from hotpath.events import ServerLimits
from mta.cleanup import CheckSpecs
from mta.config.maincf import ConfigError, Settings
from mta.config.values import boolean, duration, number
from mta.queue import split_filter


def bare_newline_mode(settings: Settings) -> str:
    """The engine's bare_newline mode for smtpd_forbid_bare_newline."""
    name = "smtpd_forbid_bare_newline"
    text = settings.get(name).strip().lower()
    if text == "yes":
        return "strict"
    if text in ("normal", "no"):
        # Postfix's "no" lets LF.LF end DATA; the engine never allows that (SMTP smuggling),
        # so "no" gets the closest safe behaviour.
        return "normal"
    raise ConfigError(f"{name} = {text!r}: expected yes, normal or no")


@dataclass(frozen=True, slots=True)
class SmtpdSettings:
    """Everything a worker's sessions need to know from main.cf, already checked."""

    myhostname: str
    mail_name: str
    banner: str
    limits: ServerLimits
    hard_error_limit: int
    timeout: float
    disable_vrfy: bool
    session_limit: int
    shutdown_timeout: float
    content_checks: CheckSpecs | None = None
    """None: no *_checks table is set, and content passes through uninspected."""
    content_filter: str = ""
    """transport:nexthop for the envelope extra `filter` of every message; empty for none."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpdSettings:
        myhostname = settings.get("myhostname").strip()
        if not myhostname or not myhostname.isascii() or any(c in myhostname for c in " \t"):
            raise ConfigError(f"myhostname = {myhostname!r}: expected a host name")
        mail_name = settings.get("mail_name").strip()
        if (
            not mail_name
            or not mail_name.isascii()
            or not mail_name.isprintable()
            or " " in mail_name
        ):
            raise ConfigError(f"mail_name = {mail_name!r}: expected one word")
        banner = settings.get("smtpd_banner").strip()
        if not banner or any(char in banner for char in "\r\n\0"):
            raise ConfigError(f"smtpd_banner = {banner!r}: expected one line of text")
        content_filter = settings.get("content_filter").strip()
        if content_filter and split_filter(content_filter) is None:
            raise ConfigError(f"content_filter = {content_filter}: expected transport:nexthop")
        limits = ServerLimits(
            message_size_limit=number(settings, "message_size_limit", minimum=1),
            recipient_limit=number(settings, "smtpd_recipient_limit"),
            bare_newline=bare_newline_mode(settings),
        )
        return cls(
            myhostname=myhostname,
            mail_name=mail_name,
            banner=banner,
            limits=limits,
            hard_error_limit=number(settings, "smtpd_hard_error_limit", minimum=1),
            timeout=duration(settings, "smtpd_timeout"),
            disable_vrfy=boolean(settings, "disable_vrfy_command"),
            session_limit=number(settings, "smtpd_worker_session_limit", minimum=1),
            shutdown_timeout=duration(settings, "smtpd_shutdown_timeout"),
            content_checks=CheckSpecs.from_settings(settings),
            content_filter=content_filter,
        )
