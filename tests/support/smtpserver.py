"""A scriptable SMTP/LMTP receiver on 127.0.0.1 (or a UNIX socket), built on aiosmtpd.

    script = Script(dsn=True, rcpt_replies={"b@x.test": "450 4.2.1 busy"})
    with ScriptedServer(script) as server:
        ...deliver to 127.0.0.1:server.port...
    server.messages[0].rcpt_tos, server.sessions[0].commands

The script says what the server advertises (PIPELINING, SIZE n, 8BITMIME, SMTPUTF8, DSN,
STARTTLS, CHUNKING), how it answers: a greeting other than 220, a reply per command verb
(`replies["MAIL"] = "451 4.3.0 later"`; "end" is the end of the content), per recipient at
RCPT, per recipient after the content in LMTP mode, commands it never answers (a time out for
the client), and plain text it sends right after its 220 reply to STARTTLS (the
CVE-2021-38371 attack). Everything it receives is recorded: each session's command lines
and whether TLS was up, and each message with its envelope, parameters and content.

aiosmtpd does not speak DSN or CHUNKING: this subclass takes the DSN parameters off before
aiosmtpd parses MAIL/RCPT (they stay in the record), and reads BDAT chunks itself. The server
runs in aiosmtpd's thread; stop() ends it.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import BaseController, Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as AioSession

from support.daemon import free_port

STALL_SECONDS = 3600.0
DSN_PARAMETERS = re.compile(r"\s+(?:RET|ENVID|NOTIFY|ORCPT)=\S+", re.IGNORECASE)


@dataclass
class Script:
    lmtp: bool = False
    greeting: str = ""
    """The whole greeting line(s) instead of "220 ..."; empty: a normal 220."""
    pipelining: bool = True
    size: int | None = None
    """SIZE advertised with this limit; None: no SIZE."""
    eight_bit_mime: bool = True
    smtputf8: bool = True
    dsn: bool = False
    chunking: bool = False
    starttls: ssl.SSLContext | None = None
    inject_after_starttls: bytes = b""
    ehlo_reply: str = ""
    """A reply to EHLO/LHLO instead of the extensions (to force the HELO fallback)."""
    replies: dict[str, str] = field(default_factory=dict)
    """Verb (MAIL, DATA, RSET, HELO, BDAT, "end" for the end of the content) -> reply."""
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    final_replies: dict[str, str] = field(default_factory=dict)
    """LMTP: recipient -> its reply after the content (default 250)."""
    stall: frozenset[str] = frozenset()
    """Verbs (and "GREETING", "end") never answered."""


@dataclass
class SessionRecord:
    commands: list[str] = field(default_factory=list)
    tls: bool = False
    after_mail: list[bytes] = field(default_factory=list)
    """For each MAIL: what had already arrived behind it (PIPELINING sends the whole group)."""


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    mail_line: str
    rcpt_lines: list[str]
    content: bytes
    tls: bool
    session: int


class _Handler:
    def __init__(self, owner: ScriptedServer) -> None:
        self.owner = owner

    async def handle_EHLO(  # noqa: N802 (aiosmtpd calls handle_<VERB>)
        self,
        server: _ScriptedSmtp,
        session: AioSession,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        script = self.owner.script
        session.host_name = hostname
        if script.ehlo_reply:
            return [script.ehlo_reply]
        keywords = []
        if script.pipelining:
            keywords.append("PIPELINING")
        if script.size is not None:
            keywords.append(f"SIZE {script.size}")
        if script.eight_bit_mime:
            keywords.append("8BITMIME")
        if script.smtputf8:
            keywords.append("SMTPUTF8")
        if script.dsn:
            keywords.append("DSN")
        if script.chunking:
            keywords.append("CHUNKING")
        if script.starttls is not None and not server.record.tls:
            keywords.append("STARTTLS")
        keywords.append("ENHANCEDSTATUSCODES")
        lines = [server.hostname, *keywords]
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_RCPT(  # noqa: N802
        self,
        server: _ScriptedSmtp,
        session: AioSession,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        reply = self.owner.script.rcpt_replies.get(address)
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        server.rcpt_lines.append(server.record.commands[-1])
        return reply or "250 2.1.5 Ok"

    async def handle_DATA(  # noqa: N802
        self, server: _ScriptedSmtp, session: AioSession, envelope: Envelope
    ) -> str:
        return await server.finish_message(envelope)


class _ScriptedSmtp(SMTP):
    def __init__(self, handler: _Handler, owner: ScriptedServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner
        self.record = SessionRecord()
        self.rcpt_lines: list[str] = []
        self.mail_line = ""
        self._greeted = False
        self._chunks: list[bytes] = []
        methods = dict(self._smtp_methods)
        self._smtp_methods = {verb: self._scripted(verb, m) for verb, m in methods.items()}
        self._smtp_methods["BDAT"] = self._scripted("BDAT", self._bdat)

    def _scripted(
        self, verb: str, method: Callable[[str], Coroutine[Any, Any, None]]
    ) -> Callable[[str], Coroutine[Any, Any, None]]:
        async def run(arg: str) -> None:
            record = self.record
            if not record.commands:
                self.owner.sessions.append(record)
            record.commands.append(f"{verb} {arg}" if arg else verb)
            script = self.owner.script
            if verb in script.stall:
                await asyncio.sleep(STALL_SECONDS)
            if verb == "MAIL":
                record.after_mail.append(bytes(self._reader._buffer))  # type: ignore[attr-defined]
                self.mail_line = record.commands[-1]
                self.rcpt_lines = []
                self._chunks = []
            reply = script.replies.get(verb)
            if reply is not None and verb not in ("BDAT",):
                await self.push(reply)
                return
            if verb in ("MAIL", "RCPT") and script.dsn and arg:
                arg = DSN_PARAMETERS.sub("", arg)
            await method(arg)

        return run

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        script = self.owner.script
        if not self._greeted and text.startswith("220"):
            self._greeted = True
            self.owner.greeted_peers.append(self.session.peer if self.session else None)
            if "GREETING" in script.stall:
                await asyncio.sleep(STALL_SECONDS)
            if script.greeting:
                await super().push(script.greeting)
                if not script.greeting.startswith("220"):
                    assert self.transport is not None
                    self.transport.close()
                return
        if text.startswith("220 Ready to start TLS"):
            self.record.tls = True
            self._writer.write(b"220 2.0.0 Ready to start TLS\r\n" + script.inject_after_starttls)
            return
        await super().push(status)

    async def finish_message(self, envelope: Envelope) -> str:
        script = self.owner.script
        if "end" in script.stall:
            await asyncio.sleep(STALL_SECONDS)
        content = bytes(envelope.original_content or b"")
        self.owner.messages.append(
            Received(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                self.mail_line,
                list(self.rcpt_lines),
                content,
                self.record.tls,
                len(self.owner.sessions) - 1,
            )
        )
        if script.lmtp:
            replies = [
                script.final_replies.get(rcpt, f"250 2.0.0 <{rcpt}> Saved")
                for rcpt in envelope.rcpt_tos
            ]
            return "\r\n".join(replies)
        return script.replies.get("end", "250 2.0.0 Ok: queued as TEST")

    async def _bdat(self, arg: str) -> None:
        words = (arg or "").split()
        if not words or not words[0].isdigit() or len(words) > 2:
            await self.push("501 5.5.4 Syntax: BDAT size [LAST]")
            return
        data = await self._reader.readexactly(int(words[0]))
        reply = self.owner.script.replies.get("BDAT")
        if reply is not None:
            await self.push(reply)
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("554 5.5.1 Error: no valid recipients")
            return
        self._chunks.append(data)
        if len(words) == 1:
            await self.push(f"250 2.0.0 {len(data)} octets received")
            return
        self.envelope.original_content = b"".join(self._chunks)
        status = await self.finish_message(self.envelope)
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)


class _ScriptedLmtp(_ScriptedSmtp, LMTP):
    pass


class _ScriptedController(BaseController):
    """What the TCP and the UNIX socket controllers share: the owner's script and records."""

    def __init__(self, owner: ScriptedServer, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        kind = _ScriptedLmtp if self.owner.script.lmtp else _ScriptedSmtp
        return kind(self.handler, self.owner, **self.SMTP_kwargs)


class _InetController(_ScriptedController, Controller):
    def _trigger_server(self) -> None:
        # Only connect: a scripted greeting may stall or refuse, which aiosmtpd's own check
        # (it reads the greeting) would take for a failure to start.
        with socket.create_connection((self.hostname, self.port), 5.0) as probe:
            self.owner.trigger_peer = probe.getsockname()


class _UnixController(_ScriptedController, UnixSocketController):
    def _trigger_server(self) -> None:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(self.unix_socket))


class ScriptedServer:
    """One scripted receiver; a context manager that starts and stops it."""

    def __init__(
        self,
        script: Script | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        unix_path: Path | None = None,
    ) -> None:
        self.script = script or Script()
        self.host = host
        self.port = port or (0 if unix_path else free_port(host))
        self.unix_path = unix_path
        self.sessions: list[SessionRecord] = []
        self.messages: list[Received] = []
        self.greeted_peers: list[object] = []
        self.trigger_peer: object = None
        kwargs: dict[str, Any] = {
            "server_hostname": "mx.scripted.test",
            "enable_SMTPUTF8": True,
            "data_size_limit": None,
            "tls_context": self.script.starttls,
            "ready_timeout": 10.0,
        }
        if unix_path is not None:
            self.controller: Controller | UnixSocketController = _UnixController(
                self, unix_socket=str(unix_path), **kwargs
            )
        else:
            self.controller = _InetController(self, hostname=host, port=self.port, **kwargs)

    def start(self) -> ScriptedServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def greeted(self) -> int:
        """TCP connections greeted (aiosmtpd's own start-up probe not counted)."""
        return sum(peer != self.trigger_peer for peer in self.greeted_peers)

    def commands(self) -> list[list[str]]:
        """Each session's command lines (sessions with no command left out)."""
        return [list(record.commands) for record in self.sessions]
