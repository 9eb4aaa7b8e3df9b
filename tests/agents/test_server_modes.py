"""The agent server's three ways to run deliver: inline, in threads, and as coroutines (the
smtp/lmtp agents), over a real UNIX socket speaking mta.proto.delivery."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from support.instance import environment

from mta.agents.server import AgentOptions, AgentServer, listen_unix
from mta.proto.delivery import (
    DeliveryRequest,
    DeliveryResult,
    FrameDecoder,
    Outcome,
    RecipientOutcome,
    RequestRecipient,
    encode_request,
)

DELAY = 0.3


def request(request_id: int) -> DeliveryRequest:
    return DeliveryRequest(
        request_id,
        f"ID{request_id}",
        "example.test",
        "a@b.test",
        0.0,
        0.0,
        (RequestRecipient(0, "x@example.test"),),
    )


def sent(req: DeliveryRequest, text: str) -> list[RecipientOutcome]:
    return [RecipientOutcome(0, Outcome.SENT, "2.0.0", "none", text)]


def exchange(path: Path, server: AgentServer, count: int) -> tuple[list[DeliveryResult], float]:
    """Send `count` requests at once on one connection; the answers and the time they took."""
    stop = asyncio.Event()
    results: list[DeliveryResult] = []
    elapsed = 0.0

    def client() -> None:
        nonlocal elapsed
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            started = time.monotonic()
            sock.sendall(b"".join(encode_request(request(n)) for n in range(1, count + 1)))
            decoder = FrameDecoder()
            while len(results) < count:
                for frame in decoder.feed(sock.recv(65536)):
                    assert isinstance(frame, DeliveryResult)
                    results.append(frame)
            elapsed = time.monotonic() - started

    async def main() -> None:
        sock = listen_unix(path)
        serving = asyncio.ensure_future(server.serve([sock], stop))
        await asyncio.to_thread(client)
        stop.set()
        await serving

    asyncio.run(main())
    return results, elapsed


def test_coroutine_deliveries_run_concurrently_and_cleanup_is_awaited(tmp_path: Path) -> None:
    closed: list[bool] = []

    async def deliver(req: DeliveryRequest) -> Sequence[RecipientOutcome]:
        await asyncio.sleep(DELAY)
        return sent(req, f"async {req.request_id}")

    async def cleanup() -> None:
        closed.append(True)

    server = AgentServer("test", deliver, AgentOptions(), cleanup)
    assert server.asynchronous
    results, elapsed = exchange(tmp_path / "agent", server, 5)
    assert sorted(r.request_id for r in results) == [1, 2, 3, 4, 5]
    assert {r.outcomes[0].text for r in results} == {f"async {n}" for n in range(1, 6)}
    assert elapsed < 3 * DELAY  # five sleeping deliveries overlapped
    assert closed == [True]


def test_a_failing_coroutine_defers_its_recipients(tmp_path: Path) -> None:
    async def deliver(req: DeliveryRequest) -> Sequence[RecipientOutcome]:
        raise RuntimeError("bug")

    results, _ = exchange(tmp_path / "agent", AgentServer("test", deliver, AgentOptions()), 1)
    (outcome,) = results[0].outcomes
    assert (outcome.outcome, outcome.dsn, outcome.text) == (
        Outcome.DEFERRED,
        "4.3.0",
        "delivery agent error",
    )


def test_inline_and_threaded_deliveries_still_work(tmp_path: Path) -> None:
    threads: set[str] = set()

    def deliver(req: DeliveryRequest) -> Sequence[RecipientOutcome]:
        threads.add(threading.current_thread().name)
        return sent(req, "sync")

    inline = AgentServer("test", deliver, AgentOptions())
    assert not inline.asynchronous
    results, _ = exchange(tmp_path / "inline", inline, 2)
    assert [r.outcomes[0].text for r in results] == ["sync", "sync"]
    assert threads == {threading.main_thread().name}
    threaded = AgentServer("test", deliver, AgentOptions(threads=2))
    results, _ = exchange(tmp_path / "threaded", threaded, 2)
    assert len(results) == 2 and len(threads) > 1


def test_master_cf_overrides_reach_the_agent(tmp_path: Path) -> None:
    """`-o name=value` (master.cf arguments) overrides main.cf for that agent process."""
    elsewhere = tmp_path / "no-queue-here"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mta.agents.local",
            "-c",
            str(tmp_path),
            "--listen",
            str(tmp_path / "socket"),
            "-o",
            f"queue_directory={elsewhere}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment(),
    )
    assert done.returncode != 0
    assert f"queue directory {elsewhere} does not exist" in done.stderr
