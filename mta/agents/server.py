"""The delivery agent server shared by discard, error and local (Postfix's single_server).

One process, one event loop (uvloop when installed), serving qmgr connections on inherited
(`--listen-fd N`) or own (`--listen PATH`) UNIX stream sockets with the protocol of
mta.proto.delivery. For each request it calls the agent's deliver function (inline, or in a
small thread pool when the agent blocks on disk, or as a task when deliver is a coroutine
function, so that one process has many network deliveries in flight: smtp, lmtp), logs one
Postfix status line per recipient, and only then answers: a final status is in the log before
qmgr can make the queue forget it.

Life: after `--max-use` requests, `--max-idle` seconds without one, or SIGTERM, the server
retires: it stops listening, reads no further requests, finishes those in flight, and sends
each connection a GOODBYE naming the last request it read, so qmgr can send the rest to
another agent at once instead of counting them as a crash.

Trust: frames come from qmgr over a 0600 socket, yet each is bounded and checked
(mta.proto.delivery.DeliveryLimits); a malformed one drops that connection with a log line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from mta.config.maincf import ConfigError, Settings, load_settings
from mta.proto.delivery import (
    DeliveryRequest,
    DeliveryResult,
    FrameDecoder,
    Goodbye,
    Outcome,
    ProtocolError,
    RecipientOutcome,
    encode_goodbye,
    encode_result,
)
from mta.proto.logline import status_line
from mta.queue import QueueError
from mta.util import maillog
from mta.util.sysexits import EX_CONFIG, EX_OSERR, EX_SOFTWARE, EX_USAGE

# 0: never retire, the master's default too (docs/processes.md): an agent is an event loop
# serving many connections, and restarting a Python process costs far more than it saves.
DEFAULT_MAX_USE = 0
DEFAULT_MAX_IDLE = 0.0
IDLE_CHECK_INTERVAL = 1.0
LISTEN_BACKLOG = 128

Deliver = Callable[[DeliveryRequest], Sequence[RecipientOutcome]]
AsyncDeliver = Callable[[DeliveryRequest], Awaitable[Sequence[RecipientOutcome]]]
Cleanup = Callable[[], None]
AsyncCleanup = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AgentOptions:
    max_use: int = DEFAULT_MAX_USE
    """Requests served before the process retires (0: no limit)."""
    max_idle: float = DEFAULT_MAX_IDLE
    """Seconds without a request before the process retires (0: no limit)."""
    threads: int = 0
    """Deliver in this many threads (for agents that block on disk); 0: in the event loop."""


class AgentServer:
    """Serves one agent's deliver function to qmgr connections until it retires."""

    def __init__(
        self,
        name: str,
        deliver: Deliver | AsyncDeliver,
        options: AgentOptions,
        closing: AsyncCleanup | None = None,
    ) -> None:
        self.name = name
        self.log = logging.getLogger(f"mta.{name}")
        self.deliver = deliver
        self.asynchronous = inspect.iscoroutinefunction(deliver)
        """deliver is a coroutine function: each request runs as a task in the loop."""
        self.closing = closing
        """Awaited after the last delivery, before serve() returns (closes cached sessions)."""
        self.options = options
        self.requests = 0
        self.retiring = False
        self.connections: set[_Connection] = set()
        self._last_request = time.monotonic()
        self._executor = (
            ThreadPoolExecutor(options.threads, thread_name_prefix=name)
            if options.threads
            else None
        )
        self._retired = asyncio.Event()
        self._servers: list[asyncio.AbstractServer] = []

    async def serve(self, sockets: Sequence[socket.socket], stop: asyncio.Event) -> None:
        """Serve until retired (max_use, max_idle) or until stop is set."""
        loop = asyncio.get_running_loop()
        for sock in sockets:
            self._servers.append(
                await loop.create_unix_server(lambda: _Connection(self), sock=sock)
            )
        watchers = [
            asyncio.ensure_future(self._watch_idle()),
            asyncio.ensure_future(self._watch_stop(stop)),
        ]
        try:
            await self._retired.wait()
            while self.connections:
                await asyncio.sleep(0.01)
        finally:
            for watcher in watchers:
                watcher.cancel()
            for server in self._servers:
                server.close()
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            if self.closing is not None:
                await self.closing()

    async def _watch_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.retire("stopping")

    async def _watch_idle(self) -> None:
        if not self.options.max_idle:
            return
        while True:
            await asyncio.sleep(min(IDLE_CHECK_INTERVAL, self.options.max_idle))
            busy = any(connection.in_flight for connection in self.connections)
            if busy:
                self._last_request = time.monotonic()
            elif time.monotonic() - self._last_request >= self.options.max_idle:
                self.retire("idle")
                return

    def retire(self, why: str) -> None:
        if self.retiring:
            return
        self.retiring = True
        self.log.debug("retiring (%s) after %d requests", why, self.requests)
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.say_goodbye_when_done()
        self._retired.set()

    def admit(self) -> bool:
        """Count one request; False once the server is retiring (the request is not read)."""
        if self.retiring:
            return False
        self.requests += 1
        self._last_request = time.monotonic()
        if self.options.max_use and self.requests >= self.options.max_use:
            # This request is still served; the ones after it go to another process.
            asyncio.get_running_loop().call_soon(self.retire, "max_use")
        return True

    def run(self, request: DeliveryRequest) -> bytes:
        """Deliver one request, log each recipient, and return the encoded answer."""
        received = time.time()
        try:
            outcomes = cast(Deliver, self.deliver)(request)
        except Exception:
            # A bug in an agent must not take the queue's mail with it: defer and say why.
            self.log.exception("warning: %s: delivery failed unexpectedly", request.queue_id)
            outcomes = []
        return self._answer(request, outcomes, received)

    async def run_async(self, request: DeliveryRequest) -> bytes:
        """run() for a coroutine deliver function."""
        received = time.time()
        try:
            outcomes = await cast(AsyncDeliver, self.deliver)(request)
        except Exception:
            self.log.exception("warning: %s: delivery failed unexpectedly", request.queue_id)
            outcomes = []
        return self._answer(request, outcomes, received)

    def _answer(
        self, request: DeliveryRequest, outcomes: Sequence[RecipientOutcome], received: float
    ) -> bytes:
        reported = {outcome.index for outcome in outcomes}
        missing = [
            RecipientOutcome(r.index, Outcome.DEFERRED, "4.3.0", "none", "delivery agent error")
            for r in request.recipients
            if r.index not in reported
        ]
        outcomes = [*outcomes, *missing]
        done = time.time()
        by_index = {recipient.index: recipient for recipient in request.recipients}
        before_qmgr = max(0.0, request.active_time - request.arrival_time)
        in_qmgr = max(0.0, received - request.active_time)
        for outcome in outcomes:
            recipient = by_index.get(outcome.index)
            if recipient is None:
                continue
            maillog.line(
                status_line(
                    request.queue_id,
                    recipient.address,
                    recipient.orig_address,
                    outcome.relay,
                    (before_qmgr, in_qmgr, 0.0, done - received),
                    outcome.dsn,
                    outcome.outcome.word,
                    outcome.text,
                ),
                self.log.name,
            )
        return encode_result(DeliveryResult(request.request_id, tuple(outcomes)))

    async def run_in_thread(self, request: DeliveryRequest) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run, request)


class _Connection(asyncio.Protocol):
    """One qmgr connection: requests in, answers out, several in flight."""

    def __init__(self, server: AgentServer) -> None:
        self.server = server
        self.decoder = FrameDecoder()
        self.in_flight = 0
        self.last_request_id = 0
        self.transport: asyncio.Transport | None = None
        self._goodbye_pending = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        if self.server.retiring:
            self.say_goodbye_when_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self._goodbye_pending:
            return
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as error:
            self.server.log.warning("warning: malformed request from qmgr: %s", error)
            self.transport.abort()
            return
        answers: list[bytes] = []
        for frame in frames:
            if not isinstance(frame, DeliveryRequest):
                self.server.log.warning("warning: unexpected %s frame from qmgr", type(frame))
                self.transport.abort()
                return
            if not self.server.admit():
                break
            self.last_request_id = frame.request_id
            if self.server.asynchronous:
                self.in_flight += 1
                task = asyncio.ensure_future(self.server.run_async(frame))
                task.add_done_callback(self._threaded_answer)
            elif self.server.options.threads:
                self.in_flight += 1
                task = asyncio.ensure_future(self.server.run_in_thread(frame))
                task.add_done_callback(self._threaded_answer)
            else:
                answers.append(self.server.run(frame))
        if answers:
            self.transport.write(b"".join(answers))
        if self.server.retiring:
            self.say_goodbye_when_done()

    def _threaded_answer(self, task: asyncio.Future[bytes]) -> None:
        self.in_flight -= 1
        if self.transport is not None and not task.cancelled() and task.exception() is None:
            self.transport.write(task.result())
        if self._goodbye_pending:
            self._finish()

    def say_goodbye_when_done(self) -> None:
        self._goodbye_pending = True
        if not self.in_flight:
            self._finish()

    def _finish(self) -> None:
        if self.transport is None or self.in_flight:
            return
        self.transport.write(encode_goodbye(Goodbye(self.last_request_id)))
        self.transport.close()


def listen_unix(path: Path) -> socket.socket:
    """Bind a 0600 UNIX stream socket at path (replacing a stale one) and listen."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(os.fsencode(path))
    finally:
        os.umask(old_umask)
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def run_loop(server: AgentServer, sockets: Sequence[socket.socket]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await server.serve(sockets, stop)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def agent_main(
    name: str,
    make_deliver: Callable[
        [Settings, str], tuple[Deliver, Cleanup] | tuple[AsyncDeliver, AsyncCleanup]
    ],
    argv: list[str] | None,
    *,
    threads: int = 0,
) -> int:
    """The `python -m mta.agents.<name>` entry point shared by every agent.

    make_deliver(settings, service) returns the deliver function and a cleanup callback: both
    plain functions, or both coroutine functions (the cleanup is then awaited in the event
    loop after the last delivery). `-o name=value` overrides a main.cf parameter for this
    service, as master.cf's arguments do.
    """
    parser = argparse.ArgumentParser(prog=f"python -m mta.agents.{name}")
    parser.add_argument("-c", "--config-dir", type=Path, default=Path("."))
    parser.add_argument("--service", default=name)
    parser.add_argument("--listen", action="append", default=[], type=Path, metavar="PATH")
    parser.add_argument("--listen-fd", action="append", type=int, default=[], metavar="FD")
    parser.add_argument("--max-use", type=int, default=DEFAULT_MAX_USE)
    parser.add_argument("--max-idle", type=float, default=DEFAULT_MAX_IDLE)
    parser.add_argument("-o", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    maillog.configure(args.service)
    if not args.listen and not args.listen_fd:
        print(f"mta/{args.service}: give --listen PATH or --listen-fd N", file=sys.stderr)
        return EX_USAGE
    try:
        settings = load_settings(args.config_dir)
        overrides = dict(setting.partition("=")[::2] for setting in args.o)
        if overrides:
            origins = {k: v for k, v in settings.origins.items() if k not in overrides}
            settings = Settings({**settings.parameters, **overrides}, origins)
        deliver, cleanup = make_deliver(settings, args.service)
    except (ConfigError, QueueError) as error:
        print(f"mta/{args.service}: fatal: {error}", file=sys.stderr)
        return EX_CONFIG if isinstance(error, ConfigError) else EX_SOFTWARE
    try:
        sockets = [socket.socket(fileno=fd) for fd in args.listen_fd]
        sockets += [listen_unix(path) for path in args.listen]
        options = AgentOptions(max_use=args.max_use, max_idle=args.max_idle, threads=threads)
        closing = cast(AsyncCleanup, cleanup) if inspect.iscoroutinefunction(cleanup) else None
        run_loop(AgentServer(args.service, deliver, options, closing), sockets)
    except OSError as error:
        print(f"mta/{args.service}: fatal: {error}", file=sys.stderr)
        return EX_OSERR
    finally:
        if not inspect.iscoroutinefunction(cleanup):
            cleanup()
    return 0
