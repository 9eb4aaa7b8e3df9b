"""One SMTP or LMTP client session over asyncio: connect, greeting, EHLO/LHLO, STARTTLS, and
mail transactions with per-recipient results, as Postfix's smtp(8) and lmtp(8) speak them.

    session = await open_session(endpoint, client_settings, tls_plan, log)
    results = await session.deliver(envelope, content)   # one RecipientResult per recipient
    session.quit()

Standards: RFC 5321 (SMTP), RFC 2033 (LMTP: LHLO, one reply per accepted recipient after the
end of data), RFC 2920 (PIPELINING: MAIL, every RCPT and DATA, or BDAT with the content, in one
write), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN: NOTIFY,
ORCPT, RET, ENVID), RFC 3030 (CHUNKING: BDAT), RFC 3207 (STARTTLS), RFC 2034 (enhanced status
codes in results).

Decisions (docs/delivery.md says why):
  * 8BITMIME: BODY=8BITMIME goes with mail received as 8BITMIME when the server offers it; when
    it does not, the content is sent unchanged (no MIME downgrade), as most MTAs do.
  * SMTPUTF8: a message that needs it (non-ASCII envelope addresses or headers, received with
    SMTPUTF8) to a server that does not offer it bounces with 5.6.7, as Postfix does.
  * SIZE: a server whose SIZE limit is below the message size gets no MAIL command; the
    recipients bounce with 5.3.4, as Postfix does.
  * CHUNKING: used when offered (Postfix 3.4 does the same): one BDAT LAST with the whole
    content, pipelined with MAIL and RCPT when PIPELINING is offered too, which saves the DATA
    round trip. smtp_discard_ehlo_keywords = chunking turns it off.
  * QUIT: sent without waiting for its reply (smtp_skip_quit_response = yes, Postfix's default).

Security: what the server sends is bounded (ReplyParser: reply_line_limit octets a line,
reply_max_lines lines a reply (EHLO keywords too), reply_backlog lines of replies
queued unread: past that reading stops until the session takes some, so a server flooding
replies fills its own socket buffers, not our memory). What we send never carries a
bare CR or LF: content goes through hotpath's dot_stuff (CRLF line ends, dot-stuffing, long
lines folded at *_line_length_limit), and an envelope address or parameter holding a control
character is refused before it reaches a command line (no command injection from the queue).
After STARTTLS, any bytes the server sent with or after its 220 reply and before the handshake
are discarded and the session starts again with EHLO (CVE-2021-38371 class).

Parameters: through mta.smtp.settings.ClientSettings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from hotpath.events import Reply, ReplySyntaxError
from hotpath.parser import ReplyParser, dot_stuff
from mta.dns.nexthop import address_or_none
from mta.smtp.settings import ClientSettings, Protocol
from mta.smtp.tls import describe, verified_name
from mta.smtp.xtext import encode_xtext

WRITE_CHUNK_BYTES = 64 * 1024  # content goes out in chunks, each under smtp_data_xfer_timeout
_closing: set[asyncio.Future[None]] = set()  # sessions waiting for their QUIT reply


# -- what goes in, what comes out ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect: a host name (for logs and certificate names) and its address and port,
    or a UNIX socket path (LMTP)."""

    host: str
    address: str
    port: int = 25
    unix: bool = False

    @property
    def name(self) -> str:
        """`host[address]`, as Postfix names a server in its messages."""
        return f"{self.host}[{self.address}]"

    @property
    def relay(self) -> str:
        """The relay= field of the log: `host[address]:port` (`host[path]` for a socket)."""
        return self.name if self.unix else f"{self.name}:{self.port}"


@dataclass(frozen=True, slots=True)
class EnvelopeRecipient:
    address: str
    notify: tuple[str, ...] = ()
    """NOTIFY keywords (NEVER, or SUCCESS/FAILURE/DELAY); empty: no NOTIFY parameter."""
    orcpt: str = ""
    """The original recipient as `addr-type;address`; empty: none."""


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str
    recipients: tuple[EnvelopeRecipient, ...]
    size: int
    eight_bit_mime: bool = False
    smtputf8: bool = False
    ret: str = ""
    """RET=FULL or HDRS; empty: none."""
    envid: str = ""


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient: a reply code, an RFC 3463 status, and the text as
    Postfix logs it ("250 2.0.0 Ok: queued as X", "host h[a] said: 550 ... (in reply to ...)")."""

    code: int
    dsn: str
    text: str

    @property
    def success(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500


class SessionError(Exception):
    """The session failed as a whole: nothing more can be done on it.

    try_next: another host may do better (connection trouble, a 4xx greeting, TLS failures);
    plaintext_retry: at level may, a failed handshake is retried without TLS.
    """

    def __init__(
        self,
        dsn: str,
        text: str,
        *,
        try_next: bool = True,
        plaintext_retry: bool = False,
        connected: bool = True,
    ) -> None:
        super().__init__(text)
        self.dsn = dsn
        self.text = text
        self.try_next = try_next
        self.plaintext_retry = plaintext_retry
        self.connected = connected
        """A session was established (it counts against *_mx_session_limit)."""
        self.results: tuple[RecipientResult | None, ...] = ()
        """From Session.deliver: what each recipient had got before the session broke (a
        refusal at RCPT, an LMTP reply after the content), None where nothing; empty when
        the session broke outside a transaction."""

    @property
    def permanent(self) -> bool:
        return self.dsn.startswith("5")


def reply_dsn(reply: Reply) -> str:
    """The reply's enhanced status code, or one derived from its code as Postfix does."""
    return reply.status or f"{reply.code // 100}.0.0"


def reply_text(reply: Reply) -> str:
    """The reply as one printable line: Postfix's printable() makes each character that is
    not printable "?", so a server's CR, NUL or escape sequence never reaches a log line
    (a CR would start a forged one), a queue record or a notice."""
    text = (
        f"{reply.code} {reply.status} {reply.text}"
        if reply.status
        else f"{reply.code} {reply.text}"
    )
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else "?" for char in text)


# -- TLS plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsPlan:
    """What this connection does about TLS, decided by the agent from the policy (and DANE).

    context None: no STARTTLS. mandatory: no plain-text session if STARTTLS is not offered or
    fails. names: a verified certificate must carry one of them (verify/secure). check: an
    extra test after the handshake (DANE), returning why it failed or None.
    """

    context: ssl.SSLContext | None = None
    mandatory: bool = False
    names: tuple[str, ...] = ()
    check: Callable[[ssl.SSLObject], str | None] | None = None
    loglevel: int = 1
    server_name: str = ""
    """The SNI name when not the host's own: DANE sends the TLSA base domain (RFC 7672 8.1),
    which differs from the host when its address came through a validated CNAME."""


NO_TLS = TlsPlan()


# -- the connection: bytes in, replies out ---------------------------------------------------


class _ConnectionLost(Exception):
    pass


class _Channel(asyncio.Protocol):
    """The asyncio protocol under a session: assembles replies, flow-controls writes."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.parser = ReplyParser(settings.reply_line_limit, settings.reply_max_lines)
        self.replies: deque[Reply] = deque()
        self.error: Exception | None = None
        self.transport: asyncio.Transport | None = None
        self.discarding = False
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._queued_lines = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.error is None:
            self.error = _ConnectionLost(str(exc) if exc else "connection closed")
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def eof_received(self) -> bool:
        return False  # a half-closed server is a gone server: close our side too

    def data_received(self, data: bytes) -> None:
        if self.discarding or self.error is not None:
            return
        try:
            self.parser.receive_data(data)
        except ReplySyntaxError as error:
            self._fail(error)
        self._assemble()

    def _fail(self, error: ReplySyntaxError) -> None:
        """A reply broke its bounds or syntax: the connection ends, the error stays for reply()."""
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.abort()

    def _assemble(self) -> None:
        """Move complete replies from the parser to the queue while it holds fewer than
        reply_backlog lines (lines, not replies: a reply may be 100 lines of 2 KB); reading
        pauses while the queue is full (a server that far ahead of our commands is flooding
        us) and resumes when the session has taken replies."""
        backlog = self.settings.reply_backlog
        try:
            while self._queued_lines < backlog and (reply := self.parser.next_reply()) is not None:
                self.replies.append(reply)
                self._queued_lines += len(reply.lines)
        except ReplySyntaxError as error:
            self._fail(error)
        full = self._queued_lines >= backlog
        if full != self._reading_paused and self.transport is not None and not self.closed:
            if full:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()
            self._reading_paused = full
        self._wake()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def reset_input(self) -> None:
        """Forget every byte and reply received so far (before a TLS handshake)."""
        self.parser = ReplyParser(self.settings.reply_line_limit, self.settings.reply_max_lines)
        self.replies.clear()
        self._queued_lines = 0
        self._assemble()  # reading resumes if a full queue had paused it

    async def reply(self, timeout: float) -> Reply:
        """The next reply; TimeoutError, _ConnectionLost or ReplySyntaxError otherwise."""
        deadline = time.monotonic() + timeout if timeout else None
        while not self.replies:
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait_for(self._waiter, left)
        reply = self.replies.popleft()
        self._queued_lines -= len(reply.lines)
        if self._reading_paused:
            self._assemble()
        return reply

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise _ConnectionLost("connection closed")
        self.transport.write(data)

    async def drain(self, timeout: float) -> None:
        if self.closed:
            raise _ConnectionLost("connection closed")
        if not self._paused:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self._drain_waiter, timeout or None)
        if self.closed:
            raise _ConnectionLost("connection closed")


# -- commands --------------------------------------------------------------------------------


def _clean(value: str) -> bool:
    """No control character (CR, LF, NUL, DEL, ...): safe inside a command line."""
    return all(char >= " " and char != "\x7f" for char in value)


def _path(address: str) -> str:
    return f"<{address}>"


def _needs_smtputf8(envelope: Envelope, content: bytes) -> bool:
    """Postfix's autodetection: non-ASCII in an envelope address or in the header section."""
    if not envelope.smtputf8:
        return False
    if not envelope.sender.isascii() or any(not r.address.isascii() for r in envelope.recipients):
        return True
    end = content.find(b"\r\n\r\n")
    headers = content if end < 0 else content[:end]
    return not headers.isascii()


def _bdat_payload(content: bytes, line_limit: int) -> bytes:
    """Content for BDAT: CRLF line ends and folded lines as for DATA, without dot-stuffing."""
    stuffed = dot_stuff(content, line_limit)[: -len(b".\r\n")]
    if stuffed.startswith(b".."):
        stuffed = stuffed[1:]
    return stuffed.replace(b"\r\n..", b"\r\n.")


@dataclass
class _Step:
    """One command whose reply is awaited: its verb for messages, and its time limit."""

    command: str
    timeout: float
    what: str


@dataclass
class Session:
    """An established session (greeting read, EHLO done, TLS as planned)."""

    endpoint: Endpoint
    settings: ClientSettings
    channel: _Channel
    log: logging.Logger
    extensions: dict[str, str] = field(default_factory=dict)
    tls: str = ""
    """`TLSv1.3 with cipher ...` when TLS is up; empty otherwise."""
    created: float = field(default_factory=time.monotonic)
    transactions: int = 0
    usable: bool = True
    """False once a transaction left the protocol state unknown: never reuse it."""
    out_of_step: bool = False
    """A reply answered no command: the replies before it may have answered other commands."""

    @property
    def alive(self) -> bool:
        # A reply nobody asked for is waiting: the next command would take it for its own.
        return (
            self.usable
            and not self.channel.closed
            and self.channel.error is None
            and not self.channel.replies
        )

    # -- errors ------------------------------------------------------------------------------

    def _failure(self, error: BaseException, what: str, *, try_next: bool = True) -> SessionError:
        self.usable = False
        if isinstance(error, TimeoutError):
            text = f"conversation with {self.endpoint.name} timed out while {what}"
        elif isinstance(error, ReplySyntaxError):
            text = f"malformed reply from {self.endpoint.name} while {what}: {error}"
        else:
            text = f"lost connection with {self.endpoint.name} while {what}"
        self.abort()
        return SessionError("4.4.2", text, try_next=try_next)

    def said(self, reply: Reply, command: str) -> str:
        return (
            f"host {self.endpoint.name} said: {reply_text(reply)} (in reply to {command} command)"
        )

    def refusal(self, reply: Reply, command: str) -> RecipientResult:
        """The result of a reply that did not accept what it answered. A 4xx or 5xx keeps its
        code and status; any other (a 2xx or 3xx where that is no acceptance, such as 250 to
        DATA) is Postfix's "Protocol error", 5.5.0: never a success for mail the server
        never took, never a deferral with a 2.x.x or 3.x.x status."""
        if reply.code >= 400:
            return RecipientResult(reply.code, reply_dsn(reply), self.said(reply, command))
        self.usable = False  # the server is out of step with us
        return RecipientResult(500, "5.5.0", f"Protocol error: {self.said(reply, command)}")

    async def _read(self, step: _Step, *, last: bool = False) -> Reply:
        """The reply to step. `last`: no other reply is owed, so a complete one already behind
        it answers no command (a server out of step, or text injected ahead of our
        commands): the session ends before the next command takes that reply for its own."""
        try:
            reply = await self.channel.reply(step.timeout)
        except (TimeoutError, _ConnectionLost, ReplySyntaxError, OSError) as error:
            # After the content, the server may have taken the message: another host now
            # would deliver it twice (Postfix defers it: "may be sent more than once").
            after_content = step.command in ("end of DATA", "end of data")
            raise self._failure(error, step.what, try_next=not after_content) from None
        if last and self.channel.replies:
            extra = reply_text(self.channel.replies[0])
            self.out_of_step = True
            self.abort()
            raise SessionError(
                "4.4.2",
                f"unexpected reply from {self.endpoint.name} while {step.what}: {extra}",
            )
        return reply

    async def command(self, line: str, timeout: float, what: str, *, last: bool = True) -> Reply:
        try:
            self.channel.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        except (_ConnectionLost, OSError) as error:
            raise self._failure(error, what) from None
        return await self._read(_Step(line.split(" ", 1)[0], timeout, what), last=last)

    # -- EHLO ----------------------------------------------------------------------------------

    async def hello(self) -> None:
        """EHLO (LHLO for LMTP), HELO when EHLO is refused; keeps the offered extensions."""
        timeouts = self.settings.timeouts
        verb = self.settings.protocol.hello
        name = self.settings.helo_name
        reply = await self.command(f"{verb} {name}", timeouts.helo, "performing the EHLO handshake")
        self.extensions = {}
        if reply.code // 100 == 2:
            for line in reply.lines[1:]:  # as many as reply_max_lines allows
                keyword, _, parameters = line.strip().partition(" ")
                keyword = keyword.upper()
                if keyword and keyword not in self.settings.discard_ehlo_keywords:
                    self.extensions[keyword] = parameters.strip()
            return
        if self.settings.protocol is Protocol.SMTP and reply.code >= 400:
            helo = await self.command(
                f"HELO {name}", timeouts.helo, "performing the HELO handshake"
            )
            if helo.code // 100 == 2:
                return
            reply, verb = helo, "HELO"
        self.abort()
        refusal = self.refusal(reply, verb)
        raise SessionError(refusal.dsn, refusal.text, try_next=reply.code < 500)

    # -- STARTTLS ------------------------------------------------------------------------------

    async def starttls(self, plan: TlsPlan) -> None:
        """STARTTLS as the plan says; raises SessionError when TLS was required and failed."""
        assert plan.context is not None
        timeouts = self.settings.timeouts
        if "STARTTLS" not in self.extensions:
            if plan.mandatory:
                self.abort()
                raise SessionError(
                    "4.7.4", f"TLS is required, but was not offered by host {self.endpoint.name}"
                )
            return
        # Not last: what follows the 220 is discarded below, whatever it is.
        reply = await self.command("STARTTLS", timeouts.starttls, "sending STARTTLS", last=False)
        if reply.code != 220:
            if plan.mandatory:
                self.abort()
                raise SessionError(
                    "4.7.4",
                    f"TLS is required, but host {self.endpoint.name} refused to start TLS: "
                    f"{reply_text(reply)}",
                )
            self.log.info("host %s refused STARTTLS: %s", self.endpoint.name, reply_text(reply))
            return
        transport = self.channel.transport
        assert transport is not None
        if self.channel.error is not None or transport.is_closing():
            # Bytes after the 220 that were no reply, or a close, ended the connection: asyncio's
            # start_tls on a closed or closing transport waits for a handshake that never comes.
            self.abort()
            raise SessionError(
                "4.7.5",
                f"Cannot start TLS: handshake failure with {self.endpoint.name}: "
                f"{self.channel.error or 'connection closed'}",
                plaintext_retry=not plan.mandatory,
            )
        # Whatever came with or after the 220 was sent before the handshake: an attacker's
        # plain text must never be read as a reply inside the TLS session (CVE-2021-38371).
        self.channel.discarding = True
        self.channel.reset_input()
        loop = asyncio.get_running_loop()
        host = plan.server_name or self.endpoint.host
        server_hostname = None if self.endpoint.unix or address_or_none(host) is not None else host
        try:
            # Bounded twice: start_tls's own handshake time limit does not end its wait when
            # the connection is already gone.
            tls_transport = await asyncio.wait_for(
                loop.start_tls(
                    transport,
                    self.channel,
                    plan.context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeouts.starttls or None,
                ),
                timeouts.starttls or None,
            )
        except ssl.SSLCertVerificationError as error:
            self.abort()
            raise SessionError(
                "4.7.5",
                f"Server certificate not verified ({self.endpoint.name}): {error.verify_message}",
            ) from None
        except (OSError, TimeoutError) as error:
            self.abort()
            raise SessionError(
                "4.7.5",
                f"Cannot start TLS: handshake failure with {self.endpoint.name}: "
                f"{str(error) or type(error).__name__}",
                plaintext_retry=not plan.mandatory,
            ) from None
        if tls_transport is None:
            self.abort()
            raise SessionError("4.7.5", f"Cannot start TLS with {self.endpoint.name}")
        self.channel.transport = tls_transport
        self.channel.reset_input()
        self.channel.discarding = False
        ssl_object = tls_transport.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        trust = self._check_peer(ssl_object, plan)
        self.tls = describe(ssl_object)
        if plan.loglevel >= 1:
            self.log.info(
                "%s TLS connection established to %s: %s",
                trust,
                self.endpoint.relay,
                self.tls,
            )
        await self.hello()

    def _check_peer(self, ssl_object: ssl.SSLObject, plan: TlsPlan) -> str:
        """Postfix's trust word for the log; raises SessionError when a check fails."""
        if plan.check is not None:
            failure = plan.check(ssl_object)
            if failure is not None:
                self.abort()
                raise SessionError(
                    "4.7.5", f"Server certificate not trusted ({self.endpoint.name}): {failure}"
                )
            return "Verified"
        if plan.names:
            certificate = ssl_object.getpeercert()
            if not certificate or verified_name(certificate, plan.names) is None:
                self.abort()
                raise SessionError(
                    "4.7.5",
                    f"Server certificate not verified ({self.endpoint.name}): no name matches "
                    f"{', '.join(plan.names)}",
                )
            return "Verified"
        if ssl_object.getpeercert(binary_form=True):
            return "Untrusted"
        return "Anonymous"

    # -- a mail transaction --------------------------------------------------------------------

    def _mail_command(self, envelope: Envelope, smtputf8: bool) -> str:
        ext = self.extensions
        parameters: list[str] = []
        if "SIZE" in ext:
            parameters.append(f"SIZE={envelope.size}")
        if envelope.eight_bit_mime and "8BITMIME" in ext:
            parameters.append("BODY=8BITMIME")
        if smtputf8:
            parameters.append("SMTPUTF8")
        if "DSN" in ext:
            if envelope.ret:
                parameters.append(f"RET={envelope.ret}")
            envid = encode_xtext(envelope.envid) if envelope.envid else None
            if envid:
                parameters.append(f"ENVID={envid}")
        return " ".join([f"MAIL FROM:{_path(envelope.sender)}", *parameters])

    def _rcpt_command(self, recipient: EnvelopeRecipient) -> str:
        parameters: list[str] = []
        if "DSN" in self.extensions:
            if recipient.notify:
                parameters.append("NOTIFY=" + ",".join(recipient.notify))
            kind, semicolon, address = recipient.orcpt.partition(";")
            orcpt = encode_xtext(address) if semicolon and kind.strip() else None
            if orcpt:
                parameters.append(f"ORCPT={kind.strip()};{orcpt}")
        return " ".join([f"RCPT TO:{_path(recipient.address)}", *parameters])

    def _local_failure(self, envelope: Envelope, dsn: str, text: str) -> list[RecipientResult]:
        code = 500 if dsn.startswith("5") else 400
        return [RecipientResult(code, dsn, text) for _ in envelope.recipients]

    @property
    def dsn_offered(self) -> bool:
        return "DSN" in self.extensions

    async def deliver(self, envelope: Envelope, content: bytes) -> list[RecipientResult]:
        """One mail transaction; a result per recipient, in order. SessionError when the
        session broke (the caller may try another host for the recipients)."""
        self.transactions += 1
        ext = self.extensions
        limit = ext.get("SIZE", "")
        # ASCII digits only: str.isdigit() takes "²" (int() refuses it) and "٣" (a 3 to
        # int()); past 20 digits the limit is beyond any message (and int() stops at 4300).
        if (
            limit.isascii()
            and limit.isdigit()
            and len(limit) <= 20
            and 0 < int(limit) < envelope.size
        ):
            return self._local_failure(
                envelope,
                "5.3.4",
                f"message size {envelope.size} exceeds size limit {limit} of server "
                f"{self.endpoint.name}",
            )
        smtputf8 = _needs_smtputf8(envelope, content)
        if smtputf8 and "SMTPUTF8" not in ext:
            return self._local_failure(
                envelope,
                "5.6.7",
                f"SMTPUTF8 is required, but was not offered by host {self.endpoint.name}",
            )
        if not _clean(envelope.sender):
            return self._local_failure(envelope, "5.1.7", "bad sender address syntax")
        mail = self._mail_command(envelope, smtputf8 or (envelope.smtputf8 and "SMTPUTF8" in ext))
        results: list[RecipientResult | None] = []
        rcpt_lines: list[tuple[int, str]] = []
        for index, recipient in enumerate(envelope.recipients):
            line = self._rcpt_command(recipient)
            if not recipient.address or not _clean(line):
                results.append(RecipientResult(500, "5.1.3", "bad recipient address syntax"))
            else:
                results.append(None)
                rcpt_lines.append((index, line))
        if not rcpt_lines:
            return [result for result in results if result is not None]
        chunking = "CHUNKING" in ext
        if chunking:
            payload = _bdat_payload(content, self.settings.line_length_limit)
            data_line = f"BDAT {len(payload)} LAST"
        else:
            payload = dot_stuff(content, self.settings.line_length_limit)
            data_line = "DATA"
        try:
            return await self._transaction(mail, rcpt_lines, data_line, payload, chunking, results)
        except SessionError as error:
            if not self.out_of_step:
                error.results = tuple(results)
            raise
        finally:
            if not self.alive:
                self.abort()

    async def _transaction(
        self,
        mail: str,
        rcpt_lines: list[tuple[int, str]],
        data_line: str,
        payload: bytes,
        chunking: bool,
        results: list[RecipientResult | None],
    ) -> list[RecipientResult]:
        timeouts = self.settings.timeouts
        lmtp = self.settings.protocol is Protocol.LMTP
        pipelining = "PIPELINING" in self.extensions
        mail_step = _Step("MAIL FROM", timeouts.mail, "sending MAIL FROM")
        rcpt_step = _Step("RCPT TO", timeouts.rcpt, "sending RCPT TO")
        data_step = (
            _Step("end of data", timeouts.data_done, "sending message body")
            if chunking
            else _Step("DATA", timeouts.data_init, "sending DATA command")
        )
        done_step = _Step(
            "end of DATA",
            timeouts.data_done,
            "sending end of data -- message may be sent more than once",
        )

        def encode(lines: Sequence[str]) -> bytes:
            return "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")

        def send(lines: Sequence[str]) -> None:
            self.channel.write(encode(lines))

        accepted: list[int] = []
        try:
            if pipelining:
                group = [mail, *(line for _index, line in rcpt_lines), data_line]
                if chunking:
                    await self._send_content(encode(group) + payload)
                else:
                    send(group)
                mail_reply = await self._read(mail_step)
                rcpt_replies = [await self._read(rcpt_step) for _ in rcpt_lines]
            else:
                send([mail])
                mail_reply = await self._read(mail_step, last=True)
                rcpt_replies = []
                if mail_reply.code // 100 == 2:
                    for _index, line in rcpt_lines:
                        send([line])
                        rcpt_replies.append(await self._read(rcpt_step, last=True))
            # As Postfix: any 2xx accepts MAIL and RCPT, any 3xx DATA (RFC 5321 4.2.1).
            if mail_reply.code // 100 != 2:
                if pipelining:
                    await self._read(data_step, last=not chunking)
                    if not chunking:
                        self.usable = False  # a DATA that got 354 would wait for content
                failure = self.refusal(mail_reply, "MAIL FROM")
                return [result or failure for result in results]
            for (index, _line), reply in zip(rcpt_lines, rcpt_replies, strict=True):
                if reply.code // 100 == 2:
                    accepted.append(index)
                else:
                    results[index] = self.refusal(reply, "RCPT TO")
            if not accepted:
                if pipelining:
                    data_reply = await self._read(data_step, last=not chunking)
                    if data_reply.code // 100 == 3:
                        self.usable = False  # never send content for no recipient
                return [result for result in results if result is not None]
            if chunking:
                if not pipelining:
                    await self._send_content(encode([data_line]) + payload)
                await self._final_replies(data_step, "end of data", accepted, lmtp, results)
            else:
                if not pipelining:
                    send([data_line])
                data_reply = await self._read(data_step, last=True)
                if data_reply.code // 100 != 3:
                    failure = self.refusal(data_reply, "DATA")
                    for index in accepted:
                        results[index] = failure
                    return [result for result in results if result is not None]
                await self._send_content(payload)
                await self._final_replies(done_step, "end of DATA", accepted, lmtp, results)
        except (_ConnectionLost, OSError) as error:
            raise self._failure(error, "sending message body") from None
        return [result for result in results if result is not None]

    async def _final_replies(
        self,
        step: _Step,
        command: str,
        accepted: list[int],
        lmtp: bool,
        results: list[RecipientResult | None],
    ) -> None:
        """SMTP: one reply for the message; LMTP: one per accepted recipient (RFC 2033 4.2),
        each recorded as it comes: when the session breaks half-way, the recipients already
        answered keep their result (deferring them would deliver them twice)."""
        for position in range(len(accepted) if lmtp else 1):
            final = await self._read(step)
            if 200 <= final.code < 300:
                result = RecipientResult(final.code, reply_dsn(final), reply_text(final))
            else:
                result = self.refusal(final, command)
            for index in accepted[position : position + 1] if lmtp else accepted:
                results[index] = result

    async def _send_content(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for start in range(0, len(view), WRITE_CHUNK_BYTES):
                self.channel.write(bytes(view[start : start + WRITE_CHUNK_BYTES]))
                await self.channel.drain(self.settings.timeouts.data_xfer)
        except TimeoutError as error:
            raise self._failure(error, "sending message body") from None

    # -- reuse and the end ---------------------------------------------------------------------

    async def reset(self) -> bool:
        """RSET before reuse: True when the server answered 250 (the session is usable)."""
        if not self.alive:
            return False
        try:
            reply = await self.command("RSET", self.settings.timeouts.rset, "sending RSET")
        except SessionError:
            return False
        if reply.code != 250:
            self.abort()
            return False
        return True

    def quit(self) -> None:
        """QUIT and close; the reply is not awaited (smtp_skip_quit_response)."""
        if self.alive:
            with contextlib.suppress(_ConnectionLost, OSError):
                self.channel.write(b"QUIT\r\n")
        self.usable = False
        if self.channel.transport is not None:
            self.channel.transport.close()

    async def quit_and_wait(self) -> None:
        """QUIT, then wait for its reply up to *_quit_timeout (smtp_skip_quit_response = no)."""
        if self.alive:
            with contextlib.suppress(SessionError):
                await self.command("QUIT", self.settings.timeouts.quit, "sending QUIT")
        self.quit()

    def close(self) -> None:
        """End the session as *_skip_quit_response says: QUIT and close at once, or QUIT and
        wait for the reply in the background."""
        if self.settings.skip_quit_response or not self.alive:
            self.quit()
            return
        task = asyncio.ensure_future(self.quit_and_wait())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    def abort(self) -> None:
        self.usable = False
        if self.channel.transport is not None:
            self.channel.transport.abort()


async def open_session(
    endpoint: Endpoint, settings: ClientSettings, plan: TlsPlan, log: logging.Logger
) -> Session:
    """Connect, read the greeting, EHLO, and STARTTLS as planned; SessionError otherwise."""
    loop = asyncio.get_running_loop()
    channel = _Channel(settings)
    timeout = settings.timeouts.connect or None
    where = endpoint.relay
    try:
        if endpoint.unix:
            connecting = loop.create_unix_connection(lambda: channel, endpoint.address)
        else:
            connecting = loop.create_connection(lambda: channel, endpoint.address, endpoint.port)
        await asyncio.wait_for(connecting, timeout)
    except TimeoutError:
        raise SessionError(
            "4.4.1", f"connect to {where}: Connection timed out", connected=False
        ) from None
    except OSError as error:
        # asyncio's text is "Connect call failed (...)"; Postfix logs the system's words.
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise SessionError("4.4.1", f"connect to {where}: {reason}", connected=False) from None
    session = Session(endpoint, settings, channel, log)
    greeting = await session._read(
        _Step("greeting", settings.timeouts.helo, "receiving the initial server greeting"),
        last=True,
    )
    if greeting.code != 220:
        session.abort()
        # Postfix's smtp_skip_5xx_greeting (default yes): a 5xx greeting moves on to the next
        # host, and is no reason to bounce the mail when it is the last one.
        raise SessionError(
            "4" + reply_dsn(greeting)[1:],
            f"host {endpoint.name} refused to talk to me: {reply_text(greeting)}",
        )
    await session.hello()
    if plan.context is not None:
        await session.starttls(plan)
    return session
