"""The smtp and lmtp agents against a hostile or broken server: a raw asyncio TCP server on
127.0.0.1 plays back bytes an attacker chose (overlong and endless replies, bad codes, NUL and
bare CR/LF, closes mid-reply, silence, desynchronised replies, garbage instead of a TLS
handshake), and every delivery must end with an outcome for each recipient: deferred (4.x.x)
or bounced (5.x.x) with a reason naming the server, sent only where the server did accept the
mail, never an exception out of deliver, never a wait beyond the configured time limits, and
the message still in the queue.

The named cases come first; the last test asks hypothesis for arbitrary replies (a good
session's replies damaged, or random lines) played over a real socket, 40 examples per agent
(MTA_HOSTILE_EXAMPLES=1000 for a longer hunt)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mta.proto.delivery import DeliveryRequest, Outcome, RecipientOutcome
from mta.smtp.settings import Protocol

from .conftest import Pki
from .helpers import CONTENT, AgentHarness, client, session_to, timeouts_main_cf

TIMEOUT = 1  # seconds, every *_timeout of the agents below
FAST_MAIN_CF = timeouts_main_cf(TIMEOUT)
HANG_LIMIT = 4 * TIMEOUT + 2  # one step timing out, twice (a plain-text retry), and slack
PEER_WAIT = 5.0  # how long the hostile server waits for the client's next line
GREETING = b"220 hostile.test ESMTP\r\n"
EXAMPLES = int(os.environ.get("MTA_HOSTILE_EXAMPLES", "40"))  # more for a longer hunt


# -- the hostile server ----------------------------------------------------------------------


@dataclass
class Peer:
    """One connection as the hostile server sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int
    """1 for the first connection to this server, 2 for the next, ..."""
    received: list[bytes] = field(default_factory=list)

    async def line(self) -> bytes:
        """The client's next line (b"" when it closed)."""
        line = await asyncio.wait_for(self.reader.readline(), PEER_WAIT)
        self.received.append(line)
        return line

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, reply: bytes) -> bytes:
        """Read one command, send the reply; the command."""
        line = await self.line()
        await self.send(reply)
        return line

    async def content(self) -> list[bytes]:
        """Lines up to the end-of-data dot, which is not included."""
        lines = []
        while (line := await self.line()) not in (b".\r\n", b""):
            lines.append(line)
        return lines

    async def flood(self, data: bytes) -> None:
        """Send data again and again until the client goes away."""
        while not self.writer.is_closing():
            await self.send(data)
            await asyncio.sleep(0)  # the client runs in this loop too

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[Peer], Awaitable[None]]


class HostileServer:
    """A TCP server on 127.0.0.1 that runs `handler` for each connection, in the test's loop."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.peers: list[Peer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for peer in self.peers:
            peer.writer.transport.abort()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, len(self.peers) + 1)
        self.peers.append(peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(peer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client gave up on us: that is what these tests provoke
        finally:
            self._tasks.discard(task)
            writer.close()

    def commands(self, number: int = 1) -> list[bytes]:
        """The lines connection `number` received."""
        return self.peers[number - 1].received


# -- pieces of a conversation ------------------------------------------------------------------


def ehlo_reply(*keywords: bytes) -> bytes:
    lines = [b"hostile.test", *keywords]
    return b"".join(
        b"250" + (b" " if i == len(lines) - 1 else b"-") + line + b"\r\n"
        for i, line in enumerate(lines)
    )


async def greet_and_hello(peer: Peer, *keywords: bytes) -> None:
    await peer.send(GREETING)
    await peer.answer(ehlo_reply(*keywords))


async def envelope_ok(peer: Peer, recipients: int = 1) -> None:
    """MAIL and each RCPT answered 250, one at a time (no PIPELINING offered)."""
    await peer.answer(b"250 2.1.0 Ok\r\n")
    for _ in range(recipients):
        await peer.answer(b"250 2.1.5 Ok\r\n")


async def data_ok(peer: Peer) -> None:
    await peer.answer(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    await peer.content()


# -- running a delivery ----------------------------------------------------------------------


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[AgentHarness]:
    made = AgentHarness(tmp_path / "smtp", FAST_MAIN_CF)
    yield made
    made.close()


@pytest.fixture
def lmtp(tmp_path: Path) -> Iterator[AgentHarness]:
    made = AgentHarness(tmp_path / "lmtp", FAST_MAIN_CF, Protocol.LMTP)
    yield made
    made.close()


@pytest.fixture(params=[Protocol.SMTP, Protocol.LMTP], ids=["smtp", "lmtp"])
def agent(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AgentHarness]:
    made = AgentHarness(tmp_path, FAST_MAIN_CF, request.param)
    yield made
    made.close()


@dataclass
class Delivered:
    outcomes: list[list[RecipientOutcome]]
    server: HostileServer
    seconds: float

    @property
    def only(self) -> list[RecipientOutcome]:
        (outcomes,) = self.outcomes
        return outcomes


def deliver(
    harness: AgentHarness,
    handler: Handler,
    *recipients: str,
    messages: int = 1,
    tls: ssl.SSLContext | None = None,
    content: bytes = CONTENT,
) -> Delivered:
    """Deliver `messages` messages to the hostile server one after the other in one event
    loop (a session may be reused); check what must hold whatever the server did."""

    async def main() -> Delivered:
        async with HostileServer(handler, tls) as server:
            requests = [
                harness.request(f"[127.0.0.1]:{server.port}", *recipients, content=content)
                for _ in range(messages)
            ]
            results = []
            started = time.monotonic()
            try:
                for request in requests:
                    outcomes = await asyncio.wait_for(harness.deliver(request), HANG_LIMIT)
                    check(harness, request, outcomes)
                    results.append(outcomes)
            finally:
                harness.agent.cache.close()
                await asyncio.sleep(0.05)  # let QUIT reach the server
            return Delivered(results, server, time.monotonic() - started)

    return asyncio.run(main())


def check(
    harness: AgentHarness, request: DeliveryRequest, outcomes: list[RecipientOutcome]
) -> None:
    """One outcome per recipient, its status class matching the outcome, a reason, and the
    message still in the queue (the agent never removes mail: qmgr does, from outcomes)."""
    assert [o.index for o in outcomes] == [r.index for r in request.recipients]
    expected_class = {Outcome.SENT: "2", Outcome.DEFERRED: "4", Outcome.BOUNCED: "5"}
    for outcome in outcomes:
        assert outcome.dsn[:1] == expected_class[outcome.outcome], outcome
        assert outcome.text and outcome.text.isprintable(), outcome
    assert harness.queue.get(request.queue_id).sender == "a@sender.test"


def deferred(outcomes: list[RecipientOutcome], dsn: str, *phrases: str) -> None:
    for outcome in outcomes:
        assert (outcome.outcome, outcome.dsn) == (Outcome.DEFERRED, dsn), outcome
        for phrase in phrases:
            assert phrase in outcome.text, outcome


def bounced(outcomes: list[RecipientOutcome], dsn: str, *phrases: str) -> None:
    for outcome in outcomes:
        assert (outcome.outcome, outcome.dsn) == (Outcome.BOUNCED, dsn), outcome
        for phrase in phrases:
            assert phrase in outcome.text, outcome


# -- oversized replies -------------------------------------------------------------------------


def test_a_reply_line_longer_than_the_limit_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.answer(b"250-" + b"x" * 5000 + b"\r\n250 ok\r\n")
        await peer.line()

    done = deliver(agent, handler)
    deferred(
        done.only,
        "4.4.2",
        "malformed reply from 127.0.0.1[127.0.0.1] while performing the EHLO handshake",
        "reply line longer than 2048 octets",
    )


def test_an_overlong_line_without_end_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.line()
        await peer.flood(b"250 " + b"y" * 4096)  # MAIL answered by an endless line

    deferred(deliver(agent, handler).only, "4.4.2", "while sending MAIL FROM", "longer than")


def test_endless_continuation_lines_defer(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.line()
        await peer.flood(b"250-x\r\n" * 64)

    deferred(
        deliver(agent, handler).only,
        "4.4.2",
        "while performing the EHLO handshake",
        "reply longer than 100 lines",
    )


def test_ehlo_with_thousands_of_keywords_defers(agent: AgentHarness) -> None:
    keywords = [b"X-KEYWORD-%d" % n for n in range(5000)]

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, *keywords)
        await envelope_ok(peer)
        await data_ok(peer)
        await peer.send(b"250 2.0.0 queued\r\n")

    done = deliver(agent, handler)
    deferred(done.only, "4.4.2", "EHLO handshake", "reply longer than 100 lines")
    assert not any(line.startswith(b"MAIL") for line in done.server.commands())


def test_the_reply_line_count_limit_is_a_parameter(tmp_path: Path) -> None:
    """smtp_reply_max_lines: 150 EHLO keywords are too many by default, not at 200."""
    keywords = [b"X-KEYWORD-%d" % n for n in range(150)]

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, *keywords)
        await envelope_ok(peer)
        await data_ok(peer)
        await peer.send(b"250 2.0.0 queued\r\n")

    harness = AgentHarness(tmp_path / "raised", FAST_MAIN_CF + "smtp_reply_max_lines = 200\n")
    try:
        done = deliver(harness, handler)
    finally:
        harness.close()
    assert [outcome.outcome for outcome in done.only] == [Outcome.SENT]


# -- malformed replies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        b"25 ok\r\n",
        b"2500 ok\r\n",
        b"abc ok\r\n",
        b"199 too small\r\n",
        b"600 too big\r\n",
        b"099 zero\r\n",
        b"250x no separator\r\n",
        b"\r\n",
        b" 250 leading space\r\n",
        b"\x00\x00\x00\r\n",
    ],
    ids=[
        "two-digits",
        "four-digits",
        "letters",
        "1xx",
        "6xx",
        "0xx",
        "bad-separator",
        "empty",
        "leading-space",
        "nul",
    ],
)
def test_a_reply_code_that_is_not_3_digits_2xx_to_5xx_defers(
    agent: AgentHarness, reply: bytes
) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.answer(reply)  # to MAIL FROM
        await peer.line()

    deferred(deliver(agent, handler).only, "4.4.2", "malformed reply", "while sending MAIL FROM")


@pytest.mark.parametrize(
    "reply",
    [b"250-ok\r\n550 5.1.1 no\r\n", b"550-no\r\n250 ok\r\n", b"250-ok\r\n251 ok\r\n"],
    ids=["250-then-550", "550-then-250", "250-then-251"],
)
def test_mixed_codes_in_one_reply_defer(agent: AgentHarness, reply: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.answer(b"250 2.1.0 Ok\r\n")
        await peer.answer(reply)  # to RCPT TO
        await peer.line()

    deferred(
        deliver(agent, handler).only,
        "4.4.2",
        "reply lines with different codes",
        "while sending RCPT TO",
    )


def test_nul_and_bare_cr_in_a_refusal_bounce_with_printable_text(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.answer(b"250 2.1.0 Ok\r\n")
        await peer.answer(b"550 5.1.1 no\x00such\ruser: status=sent\x1b[2J\r\n")
        await peer.line()

    (outcome,) = deliver(agent, handler).only
    bounced([outcome], "5.1.1", "550 5.1.1 no?such?user: status=sent?[2J")
    assert "(in reply to RCPT TO command)" in outcome.text


def test_a_temporary_refusal_with_a_bare_cr_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.answer(b"250 2.1.0 Ok\r\n")
        await peer.answer(b"450 4.2.1 mailbox\rbusy\r\n")
        await peer.line()

    deferred(deliver(agent, handler).only, "4.2.1", "450 4.2.1 mailbox?busy")


def test_replies_ending_in_bare_lf_are_understood(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(b"220 hostile.test\n")
        await peer.answer(b"250-hostile.test\n250 8BITMIME\n")
        await peer.answer(b"250 2.1.0 Ok\n")
        await peer.answer(b"550 5.1.1 <b@rcpt.test>: unknown user\n")
        await peer.line()

    bounced(deliver(agent, handler).only, "5.1.1", "unknown user")


# -- the server goes away ----------------------------------------------------------------------


def test_a_close_before_the_greeting_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        peer.close()

    deferred(deliver(agent, handler).only, "4.4.2", "while receiving the initial server greeting")


def test_a_greeting_then_an_immediate_close_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(GREETING)
        peer.close()

    deferred(
        deliver(agent, handler).only,
        "4.4.2",
        "lost connection with 127.0.0.1[127.0.0.1] while performing the EHLO handshake",
    )


def test_a_close_in_the_middle_of_a_multi_line_reply_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.answer(b"250-hostile.test\r\n250-PIPELINING\r\n250-SI")
        peer.close()

    deferred(deliver(agent, handler).only, "4.4.2", "lost connection", "EHLO handshake")


BIG_CONTENT = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 9_500  # 9.5 MB


def test_a_server_that_stops_reading_the_content_times_out(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await envelope_ok(peer)
        await peer.answer(b"354 go ahead\r\n")
        await asyncio.sleep(PEER_WAIT)  # reads nothing: the client's writes fill the buffers

    done = deliver(smtp, handler, content=BIG_CONTENT)
    deferred(done.only, "4.4.2", "timed out while sending message body")
    assert done.seconds < TIMEOUT + 2


def test_a_close_while_the_content_goes_out_defers(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await envelope_ok(peer)
        await peer.answer(b"354 go ahead\r\n")
        await peer.line()
        peer.writer.transport.abort()

    deferred(deliver(smtp, handler, content=BIG_CONTENT).only, "4.4.2", "lost connection")


def test_a_close_in_the_middle_of_a_multi_line_final_reply_defers(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await envelope_ok(peer)
        await data_ok(peer)
        await peer.send(b"250-2.0.0 queued\r\n250-as")
        peer.close()

    deferred(
        deliver(smtp, handler).only,
        "4.4.2",
        "lost connection",
        "message may be sent more than once",
    )


# -- EHLO keywords -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        b"SIZE abc",
        b"SIZE -5",
        b"SIZE 1e9",
        b"SIZE \xc2\xb2",
        b"SIZE \xd9\xa3",
        b"SIZE " + b"9" * 2000,
    ],
    ids=["letters", "negative", "exponent", "superscript-digit", "arabic-digit", "huge"],
)
def test_a_size_limit_that_is_no_number_or_huge_limits_nothing(
    smtp: AgentHarness, size: bytes
) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, size)
        await envelope_ok(peer)
        await data_ok(peer)
        await peer.send(b"250 2.0.0 Ok: queued as HOSTILE\r\n")
        await peer.line()

    done = deliver(smtp, handler)
    (outcome,) = done.only
    assert (outcome.outcome, outcome.dsn) == (Outcome.SENT, "2.0.0")
    mail = done.server.commands()[1]
    assert mail.startswith(b"MAIL FROM:<a@sender.test>") and mail.endswith(b"\r\n")


def test_a_tiny_size_limit_bounces_before_mail(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"SIZE 10")
        await peer.line()

    done = deliver(smtp, handler)
    bounced(done.only, "5.3.4", "exceeds size limit 10")
    assert not any(line.startswith(b"MAIL") for line in done.server.commands())


# -- silence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_354_that_never_comes_times_out(agent: AgentHarness, pipelining: bool) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, *([b"PIPELINING"] if pipelining else []))
        await envelope_ok(peer)
        await peer.line()  # DATA, never answered
        await peer.line()

    done = deliver(agent, handler)
    deferred(
        done.only,
        "4.4.2",
        "conversation with 127.0.0.1[127.0.0.1] timed out while sending DATA command",
    )
    assert TIMEOUT <= done.seconds < TIMEOUT + 1.5


def test_a_silent_greeting_times_out(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.line()

    done = deliver(smtp, handler)
    deferred(done.only, "4.4.2", "timed out while receiving the initial server greeting")
    assert done.seconds < TIMEOUT + 1.5


def test_a_reply_trickling_one_octet_at_a_time_still_times_out(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.line()
        for octet in b"250-" + b"z" * 100:
            await peer.send(bytes([octet]))
            await asyncio.sleep(0.1)

    done = deliver(smtp, handler)
    deferred(done.only, "4.4.2", "timed out while sending MAIL FROM")
    assert done.seconds < TIMEOUT + 1.5


# -- more replies than commands ----------------------------------------------------------------


def test_a_reply_nobody_asked_for_after_the_greeting_defers(agent: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(GREETING + b"250 2.0.0 Ok: queued as FAKE\r\n")
        await peer.answer(ehlo_reply())
        await envelope_ok(peer)
        await data_ok(peer)
        await peer.send(b"250 2.0.0 Ok\r\n")

    deferred(
        deliver(agent, handler).only,
        "4.4.2",
        "unexpected reply from 127.0.0.1[127.0.0.1]",
        "250 2.0.0 Ok: queued as FAKE",
    )


def test_pipelined_replies_out_of_step_defer(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"PIPELINING")
        for _ in range(3):  # MAIL, RCPT, DATA arrive as one group
            await peer.line()
        # one RCPT reply too many: a client that counts wrong takes 250 for DATA's reply
        await peer.send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go ahead\r\n")
        await peer.content()
        await peer.send(b"250 2.0.0 Ok\r\n")

    done = deliver(smtp, handler)
    deferred(done.only, "4.4.2", "unexpected reply", "354 go ahead")
    assert b"Subject: test\r\n" not in done.server.commands()


def test_replies_out_of_step_decide_nothing_for_any_recipient(smtp: AgentHarness) -> None:
    """Once a reply answered no command, the ones before it may have answered other
    commands: the 550 read for the first RCPT bounces nobody."""

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"PIPELINING")
        for _ in range(4):  # MAIL, two RCPTs, DATA
            await peer.line()
        await peer.send(b"250 Ok\r\n550 5.1.1 no\r\n250 Ok\r\n250 Ok\r\n354 go ahead\r\n")
        await peer.line()

    done = deliver(smtp, handler, "a@rcpt.test", "b@rcpt.test")
    deferred(done.only, "4.4.2", "unexpected reply", "354 go ahead")


BIG_REPLY = b"250-" + b"x" * 2000 + b"\r\n"
FLOODS = {
    "short-replies": b"250 2.0.0 Ok\r\n" * 150_000,  # 2 MB: 150000 replies
    "long-replies": (BIG_REPLY * 99 + b"250 end\r\n") * 10,  # 2 MB: 1000 lines of 2 KB
}


@pytest.mark.parametrize("flood", FLOODS.values(), ids=FLOODS.keys())
def test_a_flood_of_replies_to_an_idle_session_is_not_read_without_bound(flood: bytes) -> None:
    """A server may send replies nobody asked for as fast as it can, say to a session waiting
    in the connection cache: the client queues at most about reply_backlog lines of them and
    stops reading (the rest waits in the kernel's buffers), and the session is never reused.
    Before, every reply was queued."""

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"PIPELINING")
        await asyncio.sleep(0.05)  # the session is established and idle
        peer.writer.write(flood)
        await peer.line()

    async def main() -> tuple[int, bool]:
        async with HostileServer(handler) as server:
            session = await session_to(server.port)
            await asyncio.sleep(0.3)  # idle, as in the cache
            lines = sum(len(reply.lines) for reply in session.channel.replies)
            alive = session.alive
            session.abort()
            return lines, alive

    lines, alive = asyncio.run(main())
    settings = client()
    assert 0 < lines < settings.reply_backlog + settings.reply_max_lines
    assert not alive


def test_more_pipelined_replies_than_the_backlog_are_all_read(smtp: AgentHarness) -> None:
    recipients = [f"r{n}@rcpt.test" for n in range(3 * client().reply_backlog)]

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"PIPELINING")
        for _ in range(len(recipients) + 2):
            await peer.line()
        await peer.send(
            b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * len(recipients) + b"354 go ahead\r\n"
        )
        await peer.content()
        await peer.send(b"250 2.0.0 Ok: queued as MANY\r\n")
        await peer.line()

    done = deliver(smtp, handler, *recipients)
    assert {(o.outcome, o.text) for o in done.only} == {
        (Outcome.SENT, "250 2.0.0 Ok: queued as MANY")
    }


# -- replies of the wrong class --------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "reply"),
    [
        ("EHLO", b"354 go on\r\n"),
        ("MAIL", b"354 go on\r\n"),
        ("RCPT", b"354 go on\r\n"),
        ("DATA", b"250 2.0.0 Ok: queued as NOTHING\r\n"),
        ("end", b"354 more?\r\n"),
    ],
    ids=["ehlo-354", "mail-354", "rcpt-354", "data-250", "end-of-data-354"],
)
def test_a_reply_of_the_wrong_class_is_a_protocol_error(
    smtp: AgentHarness, step: str, reply: bytes
) -> None:
    """Postfix's rule: a refusal that is neither 4xx nor 5xx is a "Protocol error", 5.5.0.
    Before, a 2xx that is no acceptance (250 to DATA) made the mail "sent" with no content
    sent, and a 3xx deferred it with status 3.0.0."""
    steps = ["EHLO", "MAIL", "RCPT", "DATA", "end"]
    answers = [ehlo_reply(), b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 go ahead\r\n"]

    async def handler(peer: Peer) -> None:
        await peer.send(GREETING)
        for answer in answers[: steps.index(step)]:
            await peer.answer(answer)
        if step == "end":
            await peer.content()
            await peer.send(reply)
        else:
            await peer.answer(reply)
        await peer.line()

    done = deliver(smtp, handler)
    command = {"end": "end of DATA", "MAIL": "MAIL FROM", "RCPT": "RCPT TO"}.get(step, step)
    bounced(
        done.only,
        "5.5.0",
        "Protocol error: host 127.0.0.1[127.0.0.1] said: " + reply.decode().strip(),
        f"(in reply to {command} command)",
    )
    if step != "end":
        assert b"Subject: test\r\n" not in done.server.commands()


@pytest.mark.parametrize("code", [b"220", b"251", b"252"])
def test_other_2xx_replies_accept_hello_mail_and_recipients(
    smtp: AgentHarness, code: bytes
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.send(GREETING)
        await peer.answer(code + b"-hostile.test\r\n" + code + b" PIPELINING\r\n")
        await peer.answer(code + b" sender ok\r\n")
        await peer.answer(code + b" recipient ok\r\n")
        await data_ok(peer)
        await peer.send(b"250 2.0.0 Ok: queued as X\r\n")
        await peer.line()

    done = deliver(smtp, handler)
    assert [(o.outcome, o.text) for o in done.only] == [(Outcome.SENT, "250 2.0.0 Ok: queued as X")]
    assert b"Subject: test\r\n" in done.server.commands()


# -- a session that breaks after the content -------------------------------------------------


async def lmtp_until_content(peer: Peer, recipients: int) -> None:
    await peer.send(b"220 hostile.test LMTP\r\n")
    await peer.answer(ehlo_reply(b"PIPELINING"))
    for _ in range(2 + recipients):  # MAIL, RCPTs, DATA in one group
        await peer.line()
    await peer.send(b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * recipients + b"354 go\r\n")
    await peer.content()


def test_a_close_after_the_content_keeps_the_refusals_at_rcpt(smtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer)
        await peer.answer(b"250 2.1.0 Ok\r\n")
        await peer.answer(b"550 5.1.1 <a@rcpt.test> unknown\r\n")
        await peer.answer(b"450 4.2.1 <b@rcpt.test> busy\r\n")
        await peer.answer(b"250 2.1.5 Ok\r\n")
        await data_ok(peer)
        peer.close()

    done = deliver(smtp, handler, "a@rcpt.test", "b@rcpt.test", "c@rcpt.test")
    a, b, c = done.only
    bounced([a], "5.1.1", "unknown", "(in reply to RCPT TO command)")
    deferred([b], "4.2.1", "busy", "(in reply to RCPT TO command)")
    deferred([c], "4.4.2", "lost connection", "message may be sent more than once")


def test_lmtp_fewer_replies_than_recipients_then_silence(lmtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await lmtp_until_content(peer, 3)
        await peer.send(b"250 2.0.0 <a@rcpt.test> delivered\r\n")
        await peer.line()

    done = deliver(lmtp, handler, "a@rcpt.test", "b@rcpt.test", "c@rcpt.test")
    first, *rest = done.only
    # The first recipient was delivered: deferring it would deliver it twice.
    assert (first.outcome, first.dsn) == (Outcome.SENT, "2.0.0")
    deferred(rest, "4.4.2", "timed out", "message may be sent more than once")
    assert len(done.server.peers) == 1  # never tried again elsewhere


def test_lmtp_fewer_replies_than_recipients_then_close(lmtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await lmtp_until_content(peer, 2)
        await peer.send(b"550 5.1.1 <a@rcpt.test> unknown\r\n")
        peer.close()

    done = deliver(lmtp, handler, "a@rcpt.test", "b@rcpt.test")
    bounced(done.only[:1], "5.1.1", "unknown", "(in reply to end of DATA command)")
    deferred(done.only[1:], "4.4.2", "lost connection", "message may be sent more than once")


def test_lmtp_more_replies_than_recipients_ends_the_session(lmtp: AgentHarness) -> None:
    async def handler(peer: Peer) -> None:
        await lmtp_until_content(peer, 2)
        await peer.send(b"250 2.0.0 one\r\n250 2.0.0 two\r\n250 2.0.0 three\r\n")
        await peer.line()

    done = deliver(lmtp, handler, "a@rcpt.test", "b@rcpt.test", messages=2)
    for outcomes in done.outcomes:
        assert [o.outcome for o in outcomes] == [Outcome.SENT, Outcome.SENT]
    # the session whose replies were out of step was not used for the second message
    assert len(done.server.peers) == 2
    assert not any(line.startswith(b"RSET") for line in done.server.commands(1))


# -- STARTTLS ----------------------------------------------------------------------------------


def tls_main_cf(level: str) -> str:
    return f"{FAST_MAIN_CF}smtp_tls_security_level = {level}\n"


@pytest.mark.parametrize(
    ("garbage", "with_220"),
    [
        (b"this is not TLS\r\n" * 4, True),
        (b"this is not TLS\r\n" * 4, False),
        (b"\x16\x03\x01\x00\x00", False),
        (b"", True),
        (b"", False),
    ],
    ids=["text-with-the-220", "text-after-the-220", "empty-record", "close", "close-later"],
)
def test_starttls_answered_220_then_garbage(tmp_path: Path, garbage: bytes, with_220: bool) -> None:
    """Before, garbage arriving with the 220 made the client wait for a handshake forever."""
    harness = AgentHarness(tmp_path, tls_main_cf("encrypt"))

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"STARTTLS")
        ready = b"220 2.0.0 Ready to start TLS\r\n"
        await peer.answer(ready + garbage if with_220 else ready)
        if not with_220:
            await asyncio.sleep(0.05)  # the client is in its handshake by now
            await peer.send(garbage)
        if garbage:
            await peer.line()
        peer.close()

    try:
        done = deliver(harness, handler)
    finally:
        harness.close()
    deferred(done.only, "4.7.5", "Cannot start TLS", "127.0.0.1[127.0.0.1]")
    assert done.seconds < TIMEOUT + 1


def test_starttls_garbage_at_may_falls_back_to_plain_text(tmp_path: Path) -> None:
    harness = AgentHarness(tmp_path, tls_main_cf("may"))

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"STARTTLS")
        if peer.number == 1:
            await peer.answer(b"220 2.0.0 Ready to start TLS\r\n")
            await peer.send(b"garbage, not a ServerHello\r\n")
            await peer.line()
            return
        await envelope_ok(peer)  # the plain-text retry: no STARTTLS this time
        await data_ok(peer)
        await peer.send(b"451 4.3.0 not today\r\n")
        await peer.line()

    try:
        done = deliver(harness, handler)
    finally:
        harness.close()
    deferred(done.only, "4.3.0", "not today")
    assert len(done.server.peers) == 2
    assert done.server.commands(2)[1].startswith(b"MAIL")


def test_a_tls_handshake_then_close_defers(tmp_path: Path, pki: Pki) -> None:
    harness = AgentHarness(tmp_path, tls_main_cf("may"))
    context = pki.server_context(["mx.hostile.test"])

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"STARTTLS")
        await peer.answer(b"220 2.0.0 Ready to start TLS\r\n")
        await peer.writer.start_tls(context)
        peer.writer.transport.abort()

    try:
        done = deliver(harness, handler)
    finally:
        harness.close()
    deferred(done.only, "4.4.2", "127.0.0.1[127.0.0.1]")


def test_a_tls_handshake_then_garbage_defers(tmp_path: Path, pki: Pki) -> None:
    harness = AgentHarness(tmp_path, tls_main_cf("may"))
    context = pki.server_context(["mx.hostile.test"])

    async def handler(peer: Peer) -> None:
        await greet_and_hello(peer, b"STARTTLS")
        await peer.answer(b"220 2.0.0 Ready to start TLS\r\n")
        await peer.writer.start_tls(context)
        await peer.answer(b"\x00\xff garbage inside TLS\r\n")
        await peer.line()

    try:
        done = deliver(harness, handler)
    finally:
        harness.close()
    deferred(done.only, "4.4.2", "malformed reply", "EHLO handshake")


# -- arbitrary replies -------------------------------------------------------------------------

CODES = [220, 221, 250, 251, 252, 354, 421, 450, 451, 452, 500, 501, 503, 550, 552, 554]
KEYWORDS = [b"PIPELINING", b"CHUNKING", b"SIZE 100000", b"8BITMIME", b"DSN", b"SMTPUTF8"]
ENVELOPE_REPLIES = [b"250 2.1.0 Ok\r\n"] * 4 + [b"451 4.3.0 later\r\n", b"550 5.1.1 no\r\n"]
DATA_REPLIES = [b"354 go ahead\r\n"] * 4 + [b"250 2.0.0 Ok\r\n", b"554 5.5.1 no recipients\r\n"]
FINAL_REPLIES = [b"250 2.0.0 Ok: queued\r\n"] * 3 + [b"452 4.2.2 full\r\n", b"552 5.2.2 quota\r\n"]


@st.composite
def reply_lines(draw: st.DrawFn) -> bytes:
    """A line a server might send: mostly plausible, sometimes not."""
    kind = draw(st.sampled_from(["reply", "keyword", "bytes", "code-only"]))
    end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r", b""]))
    if kind == "bytes":
        return draw(st.binary(max_size=80)) + end
    code = b"%d" % draw(st.sampled_from(CODES))
    separator = draw(st.sampled_from([b" ", b"-", b"", b"x"]))
    if kind == "code-only":
        return code + end
    if kind == "keyword":
        return code + separator + draw(st.sampled_from(KEYWORDS)) + end
    status = draw(st.sampled_from([b"", b"2.0.0 ", b"4.2.1 ", b"5.1.1 ", b"9.9.9 "]))
    text = draw(st.binary(max_size=20))
    return code + separator + status + text + end


random_chunks = st.lists(
    st.lists(reply_lines(), min_size=1, max_size=4).map(b"".join), min_size=0, max_size=8
)


@st.composite
def damaged_sessions(draw: st.DrawFn) -> list[bytes]:
    """The replies of a good session for two recipients, some dropped, doubled, cut short,
    split or replaced by an arbitrary line."""
    keywords = draw(st.lists(st.sampled_from(KEYWORDS), unique=True))
    good = [GREETING, ehlo_reply(*keywords)]
    good += [draw(st.sampled_from(ENVELOPE_REPLIES)) for _ in range(3)]
    good += [draw(st.sampled_from(DATA_REPLIES))]
    good += [draw(st.sampled_from(FINAL_REPLIES)) for _ in range(2)]
    chunks: list[bytes] = []
    for chunk in good:
        damage = draw(st.sampled_from(["none"] * 20 + ["drop", "twice", "cut", "split", "other"]))
        if damage == "none":
            chunks.append(chunk)
        elif damage == "twice":
            chunks += [chunk, chunk]
        elif damage == "cut":
            chunks.append(chunk[: draw(st.integers(0, len(chunk) - 1))])
        elif damage == "split":
            middle = draw(st.integers(1, len(chunk) - 1))
            chunks += [chunk[:middle], chunk[middle:]]
        elif damage == "other":
            chunks.append(draw(reply_lines()))
    return chunks


def player(chunks: list[bytes]) -> Handler:
    """Sends each chunk after the client's next line (or a short pause), then closes."""

    async def handler(peer: Peer) -> None:
        for chunk in chunks:
            await peer.send(chunk)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer.reader.readline(), 0.01)
        peer.close()

    return handler


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one queue for all examples
)
@given(
    chunks=st.one_of(damaged_sessions(), random_chunks, random_chunks.map(lambda c: [GREETING, *c]))
)
def test_arbitrary_replies_always_end_in_an_outcome_per_recipient(
    agent: AgentHarness, chunks: list[bytes]
) -> None:
    done = deliver(agent, player(chunks), "a@rcpt.test", "b@rcpt.test")
    event(" ".join(outcome.outcome.name for outcome in done.only))  # --hypothesis-show-statistics
