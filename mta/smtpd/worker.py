"""smtpd workers: event-loop processes serving SMTP on listening sockets.

Each worker is one process with one event loop (uvloop when installed) and its own listening
socket per address, bound with SO_REUSEPORT so that the kernel spreads connections evenly over
the workers (one accept socket shared by several processes splits them about 9:1: see
ARCHITECTURE.md "Where the time goes"). A worker can also take listening sockets that are
already open (the master hands them down as file descriptors).

Each worker opens the queue once and has one Committer, so its sessions share group commits.
On SIGTERM or SIGINT it stops accepting, lets sessions finish their transaction for up to
`smtpd_shutdown_timeout`, drops the rest, finishes the commits in flight and closes the queue:
nothing acknowledged is lost, nothing half-received is acknowledged.

Retirement, as the master asks with --max-use and --max-idle (main.cf max_use, max_idle): after
`max_use` connections the worker stops accepting and stops as above once its sessions have
ended; after `max_idle` seconds without a session it stops. Either way it exits 0, and the
master starts a new worker at once.

Parameters: those of mta.smtpd.settings and mta.smtpd.policy, and the queue's (queue_directory,
queue_sync, queue_map_size, queue_max_size, message_size_limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mta.config.maincf import Settings
from mta.queue import Committer, MailQueue, QueueSettings
from mta.rewrite import AddressRewriter
from mta.smtpd.policy import RelayPolicy
from mta.smtpd.received import RECEIVED_HEADER_LIMIT
from mta.smtpd.service import SmtpdService
from mta.smtpd.settings import SmtpdSettings
from mta.util.trigger import TriggerSender, trigger_path

log = logging.getLogger("mta.smtpd")

LISTEN_BACKLOG = 1024


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPV6]:PORT."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def listening_sockets(address: tuple[str, int], count: int) -> list[socket.socket]:
    """`count` sockets bound to one address with SO_REUSEPORT, one for each worker.

    Port 0 picks a free port for the first and binds the others to the same one.
    """
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def queue_settings(settings: Settings) -> QueueSettings:
    """The queue's settings, with room in the content limit for our Received header."""
    base = QueueSettings.from_parameters(settings.queue_directory, settings.get)
    limits = replace(
        base.limits, max_content_bytes=base.limits.max_content_bytes + RECEIVED_HEADER_LIMIT
    )
    return replace(base, limits=limits)


@dataclass(frozen=True)
class Retirement:
    """When a worker retires by itself (0: never)."""

    max_use: int = 0
    """Connections served before it stops accepting and ends."""
    max_idle: float = 0.0
    """Seconds without a session after which it ends."""


async def serve(
    settings: Settings,
    sockets: Sequence[socket.socket],
    queue: MailQueue,
    stop: asyncio.Event | None = None,
    retirement: Retirement = Retirement(),
) -> None:
    """Serve SMTP on `sockets` into `queue` until `stop` is set (None: SIGTERM or SIGINT) or
    the worker retires."""
    smtpd_settings = SmtpdSettings.from_settings(settings)
    rewriter = AddressRewriter.from_settings(settings)
    policy = RelayPolicy.from_settings(settings, rewriter.resolver)
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    committer = Committer(queue)
    trigger = TriggerSender(trigger_path(settings.queue_directory))
    service = SmtpdService(
        smtpd_settings,
        policy,
        committer,
        trigger,
        rewriter=rewriter,
        max_use=retirement.max_use,
    )
    servers: list[asyncio.Server] = []
    watchers: list[asyncio.Task[None]] = []
    try:
        for sock in sockets:
            servers.append(await loop.create_server(service.protocol_factory, sock=sock))
            log.info("listening on %s", _format_address(sock.getsockname()))
        if retirement.max_use:
            watchers.append(loop.create_task(_retire_when_used_up(service, servers, stop)))
        if retirement.max_idle:
            watchers.append(loop.create_task(_retire_when_idle(service, retirement.max_idle, stop)))
        await stop.wait()
        log.info("stopping: %d sessions open", len(service.sessions))
        for server in servers:
            server.close()
        await service.stop()
    finally:
        for watcher in watchers:
            watcher.cancel()
        for server in servers:
            server.close()
        await committer.close()
        trigger.close()


async def _retire_when_used_up(
    service: SmtpdService, servers: Sequence[asyncio.Server], stop: asyncio.Event
) -> None:
    await service.used_up.wait()
    for server in servers:
        server.close()
    log.info("max_use reached: accepting no more connections")
    await service.drained.wait()
    stop.set()


async def _retire_when_idle(service: SmtpdService, max_idle: float, stop: asyncio.Event) -> None:
    while (idle_for := service.idle_for()) < max_idle:
        await asyncio.sleep(max_idle - idle_for)
    log.info("max_idle reached: %.0fs without a session", max_idle)
    stop.set()


def _format_address(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run_worker(
    settings: Settings, sockets: Sequence[socket.socket], retirement: Retirement = Retirement()
) -> None:
    """One worker process's life: its queue and event loop, until SIGTERM, SIGINT or
    retirement."""
    with MailQueue(queue_settings(settings)) as queue:
        work = serve(settings, sockets, queue, retirement=retirement)
        try:
            import uvloop
        except ImportError:
            asyncio.run(work)
        else:
            uvloop.run(work)


def run(
    settings: Settings,
    addresses: Sequence[tuple[str, int]],
    workers: int,
    inherited: Sequence[socket.socket] = (),
    retirement: Retirement = Retirement(),
) -> int:
    """Serve on `addresses` (bound once per worker) and on `inherited` listening sockets.

    With several workers each runs in a process of its own; inherited sockets are shared by
    all of them (whoever handed them down chose how to balance). Returns the exit status: 0
    when every worker stopped cleanly.
    """
    bound = [listening_sockets(address, workers) for address in addresses]
    per_worker = [[*(socks[index] for socks in bound), *inherited] for index in range(workers)]
    if workers == 1:
        run_worker(settings, per_worker[0], retirement)
        return 0
    children: list[multiprocessing.process.BaseProcess] = []

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    context = multiprocessing.get_context("fork")
    for index, own in enumerate(per_worker):
        others = [socks[i] for socks in bound for i in range(workers) if i != index]
        children.append(
            context.Process(
                target=_worker_child,
                args=(settings, own, others, retirement),
                name=f"smtpd-{index}",
            )
        )
        children[-1].start()
    for socks in bound:
        for sock in socks:
            sock.close()
    for child in children:
        child.join()
    return 0 if all(child.exitcode == 0 for child in children) else 1


def _worker_child(
    settings: Settings,
    own: Sequence[socket.socket],
    others: Sequence[socket.socket],
    retirement: Retirement,
) -> None:
    for sock in others:
        sock.close()  # another worker's socket: holding it open would strand its connections
    run_worker(settings, own, retirement)
