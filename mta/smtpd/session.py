"""One SMTP session: an asyncio Protocol adapting the sans-IO engine (hotpath.parser).

Each read goes to `ServerEngine.receive_data`; events are taken with `next_event()` and
answered through a table of handlers, and everything queued is written with ONE write when the
engine has nothing more: a PIPELINING group costs one read and one write (RFC 2920). The end
of a message hands it to the worker's Committer; no further event of this session is handled
until the commit is durable and its reply queued, and `250 2.0.0 Ok: queued as ID` is sent only
then. Meanwhile the loop serves other sessions; input that arrives is held, and reading pauses
once more than `input_buffer_limit` octets are held (or while the client does not read our
replies), so a client cannot make us buffer without bound.

Replies and log lines follow Postfix's smtpd, so operators' greps and pflogsumm work:
  connect from unknown[ADDR]
  QUEUEID: client=unknown[ADDR]
  NOQUEUE: reject: RCPT from unknown[ADDR]: 554 5.7.1 <x@y>: Relay access denied; from=<a@b>
      to=<x@y> proto=ESMTP helo=<h>
  improper command pipelining after CMD from unknown[ADDR]
  timeout after CMD from unknown[ADDR]
  too many errors after CMD from unknown[ADDR]
  lost connection after CMD from unknown[ADDR]
  disconnect from unknown[ADDR] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5
There is no reverse DNS lookup: the client name is always "unknown", as with Postfix's
smtpd_peername_lookup = no.

Trust: nothing from the client is trusted; the engine bounds every line, path and message, and
policy (mta.smtpd.policy) decides who may relay. An unexpected exception while handling one
session logs one line (with the last traceback frame), answers 421 4.3.0 and closes that
session only. Standards: RFC 5321, 2920, 1870, 6152, 6531, 2034, 3030, 3461.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from hotpath.events import (
    Auth,
    AuthResponse,
    Bdat,
    ConnectionClosed,
    Data,
    DataChunk,
    EndOfChunk,
    EndOfData,
    Etrn,
    Event,
    Expn,
    Hello,
    Help,
    InputOverflow,
    Mail,
    Noop,
    ProtocolError,
    Quit,
    Rcpt,
    Rset,
    StartTls,
    Vrfy,
)
from hotpath.parser import ServerEngine
from mta.cleanup import ContentInspector, Inspection, log_context, open_inspector
from mta.queue import FILTER_EXTRA, BodyType, DsnRet, Message, Notify, QueueError, Recipient
from mta.rewrite import TemporaryFailure
from mta.smtpd.content import checked_message, log_inspection
from mta.smtpd.policy import client_ip, rewriting_rejection
from mta.smtpd.received import (
    address_literal,
    current_header_date,
    protocol_name,
    received_header,
)
from mta.smtpd.stats import CommandStats
from mta.util import maillog

if TYPE_CHECKING:
    from mta.smtpd.service import SmtpdService

log = logging.getLogger("mta.smtpd")

BODY_TYPES = {
    None: BodyType.UNSPECIFIED,
    "7BIT": BodyType.SEVEN_BIT,
    "8BITMIME": BodyType.EIGHT_BIT_MIME,
    "BINARYMIME": BodyType.BINARY_MIME,
}
DSN_RET = {None: DsnRet.UNSPECIFIED, "FULL": DsnRet.FULL, "HDRS": DsnRet.HDRS}
UNKNOWN_COMMAND_TEXT = "Error: command not recognized"
VRFY_ECHO_LIMIT = 400
"""Characters of a VRFY argument echoed in the 252 reply, which must fit in 512 octets."""


def notify_flags(keywords: Sequence[str] | None) -> Notify:
    flags = Notify.DEFAULT
    for keyword in keywords or ():
        flags |= Notify[keyword]
    return flags


class SmtpSession(asyncio.Protocol):
    """The server side of one SMTP connection."""

    def __init__(self, service: SmtpdService) -> None:
        self._service = service
        self._settings = settings = service.settings
        self._loop = asyncio.get_running_loop()
        self._engine = ServerEngine(settings.limits)
        limits = settings.limits
        # After the engine has drained its events it holds at most one partial line, so a
        # slice this size always fits under input_buffer_limit.
        self._feed_size = max(
            1, limits.input_buffer_limit - max(limits.command_line_limit, limits.auth_line_limit)
        )
        self._transport: asyncio.Transport | None = None
        self.client_address = ""
        self.client = "unknown[]"
        self._client_literal = ""
        self._trusted_client = False
        self._stats = CommandStats()
        self._where = "CONNECT"
        self._errors = 0
        self._helo: str | None = None
        self._helo_verb: str | None = None
        self._mail: Mail | None = None
        self._sender = ""  # MAIL FROM's address as rewritten (canonical, masquerade)
        self._recipients: list[Recipient] = []
        self._content: list[bytes] = []
        self._inspector: ContentInspector | None = None
        self._bdat = False
        self._in_content = False
        self._busy = False
        self._commit_task: asyncio.Task[None] | None = None
        self._held = bytearray()
        self._eof_held = False
        self._writing_paused = False
        self._closing = False
        self._ended = False
        self._lost = False
        self._stopping = False
        self._pipelining_logged = False
        self._last_activity = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    # -- transport callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its API.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        ip = client_ip(address)
        self.client_address = str(ip) if ip is not None else address
        self.client = f"unknown[{self.client_address}]"
        # Decided once: the address cannot change during the session.
        self._client_literal = address_literal(self.client_address)
        self._trusted_client = self._service.policy.is_trusted_client(self.client_address)
        maillog.line(f"connect from {self.client}", "mta.smtpd")
        service = self._service
        if not service.admit(self):
            self._end_with(f"421 4.7.0 {self._settings.myhostname} Error: too many connections")
            return
        self._engine.reply(220, self._settings.banner)
        self._flush()
        self._timer = self._loop.call_at(
            self._last_activity + self._settings.timeout, self._check_idle
        )

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        if self._closing:
            return
        if self._busy or self._held:
            self._held += data
        else:
            try:
                self._engine.receive_data(data)
            except InputOverflow:
                self._held += data
        if self._busy:
            self._update_reading()
        else:
            self._process()

    def eof_received(self) -> bool:
        if self._busy or self._held:
            self._eof_held = True
        elif not self._closing:
            self._engine.receive_data(b"")
            self._process()
        return True  # keep our side open: replies to what the client sent may still be due

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
        if self._in_content:
            self._stats.record("bdat" if self._bdat else "data", False)
        if not self._ended:
            log.info("lost connection after %s from %s", self._where, self.client)
        maillog.line(f"disconnect from {self.client} {self._stats.summary()}", "mta.smtpd")
        self._service.forget(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    # -- the event loop of this session ----------------------------------------------------

    def _process(self) -> None:
        """Handle events until the engine needs more input or a commit is in flight."""
        engine = self._engine
        try:
            while not self._busy and not self._closing:
                event = engine.next_event()
                if event is None:
                    if (self._held or self._eof_held) and self._feed_held():
                        continue
                    break
                EVENT_HANDLERS[type(event)](self, event)
                if self._errors >= self._settings.hard_error_limit and not self._closing:
                    log.info("too many errors after %s from %s", self._where, self.client)
                    self._end_with(f"421 4.7.0 {self._settings.myhostname} Error: too many errors")
            if engine.improper_pipelining is not None and not self._pipelining_logged:
                self._pipelining_logged = True
                log.info(
                    "improper command pipelining after %s from %s",
                    engine.improper_pipelining,
                    self.client,
                )
            if self._stopping and self._mail is None and not self._busy:
                self._end_with(f"421 4.3.2 {self._settings.myhostname} Service shutting down")
        except Exception as error:
            self._internal_error(error)
        self._flush()

    def _feed_held(self) -> bool:
        """Give the engine the next slice of held input (then the client's end of input).

        False when the engine cannot take it even though it has no events left: the session
        ends with the engine's overflow reply.
        """
        if self._held:
            chunk = bytes(self._held[: self._feed_size])
            try:
                self._engine.receive_data(chunk)
            except InputOverflow:
                self._end_with(InputOverflow.reply.decode("ascii").rstrip("\r\n"))
                return False
            del self._held[: len(chunk)]
            self._update_reading()
        elif self._eof_held:
            self._eof_held = False
            self._engine.receive_data(b"")
        return True

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        if self._writing_paused or len(self._held) > self._settings.limits.input_buffer_limit:
            transport.pause_reading()
        elif not transport.is_reading():
            transport.resume_reading()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or self._lost:
            return
        data = self._engine.data_to_send()
        if data:
            transport.write(data)
        if self._closing:
            transport.close()

    def _reply(self, code: int, text: str | Sequence[str], status: str | None = None) -> None:
        self._engine.reply(code, text, status)
        if code >= 400:
            self._errors += 1

    def _end_with(self, line: str) -> None:
        """Send what is queued plus one last reply of our own (421...), then close."""
        if self._closing:
            return
        self._closing = self._ended = True
        transport = self._transport
        if transport is None or self._lost:
            return
        transport.write(self._engine.data_to_send() + line.encode("ascii") + b"\r\n")
        if self._writing_paused:
            transport.abort()  # the client reads nothing: do not wait to flush
        else:
            transport.close()

    def _close_after_reply(self) -> None:
        self._closing = self._ended = True

    def _internal_error(self, error: Exception) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        where = (
            f" ({frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
        )
        log.error(
            "error: %s: unexpected %s after %s: %s%s",
            self.client,
            type(error).__name__,
            self._where,
            error,
            where,
        )
        self._end_with(f"421 4.3.0 {self._settings.myhostname} Server internal error")

    def _check_idle(self) -> None:
        if self._closing:
            return
        now = self._loop.time()
        deadline = self._last_activity + self._settings.timeout
        if self._busy or now < deadline:
            # A commit in flight is our wait, not the client's: it does not count as idle.
            next_check = now + self._settings.timeout if self._busy else deadline
            self._timer = self._loop.call_at(next_check, self._check_idle)
            return
        log.info("timeout after %s from %s", self._where, self.client)
        self._end_with(f"421 4.4.2 {self._settings.myhostname} Error: timeout exceeded")

    def stop(self) -> None:
        """The worker is stopping: end now if idle, else after the transaction in progress."""
        self._stopping = True
        if self._mail is None and not self._busy and not self._closing:
            self._end_with(f"421 4.3.2 {self._settings.myhostname} Service shutting down")

    def abort(self) -> None:
        if self._transport is not None:
            self._ended = True
            self._transport.abort()

    # -- event handlers --------------------------------------------------------------------

    def _hello(self, event: Hello) -> None:
        self._where = event.verb
        if event.verb == "EHLO":
            self._reply(250, self._service.ehlo_lines)
        else:
            self._reply(250, self._settings.myhostname)
        self._helo = event.domain
        self._helo_verb = event.verb
        self._reset_transaction()
        self._stats.record(event.verb.lower(), True)

    def _mail_from(self, event: Mail) -> None:
        self._where = "MAIL"
        if event.body == "BINARYMIME":  # not advertised: we do not promise binary transport
            self._reply(555, "Unsupported option: BODY=BINARYMIME", "5.5.4")
            self._stats.record("mail", False)
            return
        sender = self._service.rewriter.sender(event.reverse_path)
        if isinstance(sender, TemporaryFailure):
            rejection = rewriting_rejection(event.reverse_path, sender)
            log.warning("warning: %s", sender.reason)
            log.info(
                "NOQUEUE: reject: MAIL from %s: %s; from=<%s> proto=%s helo=<%s>",
                self.client,
                rejection,
                event.reverse_path,
                self._protocol(),
                self._helo or "",
            )
            self._reply(rejection.code, rejection.text, rejection.status)
            self._stats.record("mail", False)
            return
        self._mail = event
        self._sender = sender
        self._recipients = []
        self._content = []
        checks = self._settings.content_checks
        self._inspector = None if checks is None else open_inspector(checks)
        self._reply(250, "Ok", "2.1.0")
        self._stats.record("mail", True)

    def _rcpt_to(self, event: Rcpt) -> None:
        self._where = "RCPT"
        address = event.forward_path
        rejection = (
            None
            if self._trusted_client
            else self._service.policy.check_untrusted_recipient(address)
        )
        recipients: tuple[str, ...] = ()
        if rejection is None:
            outcome = self._service.rewriter.recipient(address)
            if isinstance(outcome, tuple):
                recipients = outcome
            else:
                rejection = rewriting_rejection(address, outcome)
                if isinstance(outcome, TemporaryFailure):
                    log.warning("warning: %s", outcome.reason)
        if rejection is not None:
            self._reply(rejection.code, rejection.text, rejection.status)
            self._stats.record("rcpt", False)
            mail = self._mail
            log.info(
                "NOQUEUE: reject: RCPT from %s: %s; from=<%s> to=<%s> proto=%s helo=<%s>",
                self.client,
                rejection,
                mail.reverse_path if mail is not None else "",
                address,
                self._protocol(),
                self._helo or "",
            )
            return
        orcpt, notify = event.orcpt or "", notify_flags(event.notify)
        if recipients == (address,):
            self._recipients.append(Recipient(address, orcpt=orcpt, notify=notify))
        else:  # rewritten: each result remembers the address the client gave
            self._recipients.extend(
                Recipient(recipient, orig_address=address, orcpt=orcpt, notify=notify)
                for recipient in recipients
            )
        self._reply(250, "Ok", "2.1.5")
        self._stats.record("rcpt", True)

    def _data(self, _event: Data) -> None:
        self._where = "DATA"
        self._bdat = False
        self._in_content = True
        self._reply(354, "End data with <CR><LF>.<CR><LF>")

    def _bdat_chunk(self, _event: Bdat) -> None:
        self._where = "BDAT"
        self._bdat = True
        self._in_content = True

    def _data_chunk(self, event: DataChunk) -> None:
        self._content.append(event.data)
        if self._inspector is not None:
            self._inspector.feed(event.data)

    def _end_of_chunk(self, event: EndOfChunk) -> None:
        self._in_content = False
        self._reply(250, f"Ok: {event.size} bytes", "2.0.0")
        self._stats.record("bdat", True)

    def _end_of_data(self, _event: EndOfData) -> None:
        self._where = "END-OF-MESSAGE"
        self._in_content = False
        message = self._build_message()
        inspection = None if self._inspector is None else self._inspector.finish()
        if inspection is not None:
            checked = self._content_checked(message, inspection)
            if checked is None:
                return
            message = checked
        self._busy = True
        self._commit_task = self._loop.create_task(self._commit(message, inspection))

    def _content_checked(self, message: Message, inspection: Inspection) -> Message | None:
        """message as the content checks left it; None when they refused or discarded it."""
        reply = inspection.reply
        if reply is None and not inspection.discarded:
            return checked_message(message, inspection)
        log_inspection(inspection, "NOQUEUE", self.client, self._checks_log_context())
        command = "bdat" if self._bdat else "data"
        if reply is None:  # DISCARD: the client is told nothing else, as with Postfix
            self._reply(250, "Ok", "2.0.0")
            self._stats.record(command, True)
        else:
            code, status, text = reply
            if inspection.failure is not None:
                log.info(
                    "NOQUEUE: reject: END-OF-MESSAGE from %s: %d %s %s;%s",
                    self.client,
                    code,
                    status,
                    text,
                    self._checks_log_context().partition(";")[2],
                )
            self._reply(code, text, status)
            self._stats.record(command, False)
        self._reset_transaction()
        return None

    def _checks_log_context(self) -> str:
        mail = self._mail
        return log_context(
            self.client,
            mail.reverse_path if mail is not None else "",
            self._recipients[0].address if self._recipients else None,
            self._protocol(),
            self._helo,
        )

    async def _commit(self, message: Message, inspection: Inspection | None = None) -> None:
        command = "bdat" if self._bdat else "data"
        try:
            queue_id = await self._service.committer.submit(
                message, inline=len(self._service.sessions) == 1
            )
        except QueueError as error:
            log.warning("warning: %s: queue: %s", self.client, error)
            code, status, text = error.reply.split(" ", 2)
            self._reply(int(code), text, status)
            self._stats.record(command, False)
        except Exception as error:
            self._internal_error(error)
        else:
            maillog.line(f"{queue_id}: client={self.client}", "mta.smtpd")
            if inspection is not None:
                log_inspection(inspection, queue_id, self.client, self._checks_log_context())
            self._reply(250, f"Ok: queued as {queue_id}", "2.0.0")
            self._stats.record(command, True)
            self._service.message_queued()
        self._reset_transaction()
        self._busy = False
        self._commit_task = None
        self._last_activity = self._loop.time()
        if not self._lost:
            self._process()

    def _rset(self, _event: Rset) -> None:
        self._where = "RSET"
        self._reset_transaction()
        self._reply(250, "Ok", "2.0.0")
        self._stats.record("rset", True)

    def _noop(self, _event: Noop) -> None:
        self._where = "NOOP"
        self._reply(250, "Ok", "2.0.0")
        self._stats.record("noop", True)

    def _quit(self, _event: Quit) -> None:
        self._where = "QUIT"
        self._reply(221, "Bye", "2.0.0")
        self._stats.record("quit", True)
        self._close_after_reply()

    def _vrfy(self, event: Vrfy) -> None:
        self._where = "VRFY"
        if self._settings.disable_vrfy:
            self._reply(502, "VRFY command is disabled", "5.5.1")
            self._stats.record("vrfy", False)
            return
        self._reply(252, event.argument[:VRFY_ECHO_LIMIT], "2.0.0")
        self._stats.record("vrfy", True)

    def _not_recognized(self, _event: Expn | Help) -> None:
        self._where = "UNKNOWN"
        self._reply(502, UNKNOWN_COMMAND_TEXT, "5.5.2")
        self._stats.record("unknown", False)

    def _starttls(self, _event: StartTls) -> None:
        self._where = "STARTTLS"
        self._reply(502, "Error: command not implemented", "5.5.1")
        self._stats.record("starttls", False)

    def _auth(self, _event: Auth | AuthResponse) -> None:
        self._where = "AUTH"
        self._reply(503, "Error: authentication not enabled", "5.5.1")
        self._stats.record("auth", False)

    def _etrn(self, _event: Etrn) -> None:
        self._where = "ETRN"
        self._reply(502, "Error: command not implemented", "5.5.1")
        self._stats.record("etrn", False)

    def _protocol_error(self, event: ProtocolError) -> None:
        if self._in_content:
            # The engine dropped the transaction (message too big, bare LF in content).
            self._stats.record("bdat" if self._bdat else "data", False)
            self._in_content = False
            self._reset_transaction()
        elif event.text == UNKNOWN_COMMAND_TEXT:
            self._where = "UNKNOWN"
            self._stats.record("unknown", False)
        else:
            self._stats.record(None, False)
        self._reply(event.code, event.text, event.status)
        if event.close:
            self._close_after_reply()

    def _connection_closed(self, _event: ConnectionClosed) -> None:
        self._closing = True

    # -- the message -----------------------------------------------------------------------

    def _protocol(self) -> str:
        mail = self._mail
        # No STARTTLS or AUTH yet: TLS and authentication are never active.
        return protocol_name(
            self._helo_verb, mail is not None and mail.smtputf8, tls=False, authenticated=False
        )

    def _build_message(self) -> Message:
        mail = self._mail
        assert mail is not None, "the engine ends a message only inside a transaction"
        protocol = self._protocol()
        header = received_header(
            helo=self._helo,
            client_name="unknown",
            client_literal=self._client_literal,
            myhostname=self._settings.myhostname,
            mail_name=self._settings.mail_name,
            protocol=protocol,
            # As the client gave them: one RCPT that aliases expanded is still one.
            recipients=list(dict.fromkeys(r.orig_address or r.address for r in self._recipients)),
            date=current_header_date(),
        )
        extras = {
            "client_name": "unknown",
            "client_address": self.client_address,
            "protocol": protocol,
        }
        if self._helo is not None:
            extras["helo_name"] = self._helo
        if self._settings.content_filter:
            extras[FILTER_EXTRA] = self._settings.content_filter
        return Message(
            sender=self._sender,
            recipients=tuple(self._recipients),
            content=b"".join(self._content),
            trace_header=header,
            extras=extras,
            dsn_ret=DSN_RET[mail.ret],
            envid=mail.envid or "",
            body_type=BODY_TYPES[mail.body],
            smtputf8=mail.smtputf8,
        )

    def _reset_transaction(self) -> None:
        self._mail = None
        self._recipients = []
        self._content = []
        self._inspector = None
        self._bdat = False


EventHandler = Callable[[SmtpSession, Any], None]

EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    Hello: SmtpSession._hello,
    Mail: SmtpSession._mail_from,
    Rcpt: SmtpSession._rcpt_to,
    Data: SmtpSession._data,
    Bdat: SmtpSession._bdat_chunk,
    DataChunk: SmtpSession._data_chunk,
    EndOfChunk: SmtpSession._end_of_chunk,
    EndOfData: SmtpSession._end_of_data,
    Rset: SmtpSession._rset,
    Noop: SmtpSession._noop,
    Quit: SmtpSession._quit,
    Vrfy: SmtpSession._vrfy,
    Expn: SmtpSession._not_recognized,
    Help: SmtpSession._not_recognized,
    StartTls: SmtpSession._starttls,
    Auth: SmtpSession._auth,
    AuthResponse: SmtpSession._auth,
    Etrn: SmtpSession._etrn,
    ProtocolError: SmtpSession._protocol_error,
    ConnectionClosed: SmtpSession._connection_closed,
}
