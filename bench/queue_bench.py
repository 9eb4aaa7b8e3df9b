"""Benchmark of the mail queue: durable enqueue rate, and the record codec compiled vs twin.

Prints, for the compiled hotpath and the pure-Python twin (run in a child process with
MTA_NO_EXTENSIONS=1), the rate of durable enqueues (fsync on, 1 KiB messages with 1 to 3
recipients) for batches of 1, 10 and 100 messages per transaction and for 1 and 4 processes
each running a group committer fed by many asyncio producers; beside it, the fsync rate of the
same disk (create + write 1.4 KB + fsync + close + unlink, as `mtabench.py probe` measures);
and a micro-benchmark of record encoding and decoding in each twin.

Usage: python bench/queue_bench.py [--dir DIR] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

MESSAGE_BYTES = 1024
BATCH_SIZES = (1, 10, 100)
PROCESS_COUNTS = (1, 4)
PRODUCERS_PER_PROCESS = 64
FSYNC_PROBE_OPS = 500
MICRO_ROUNDS = 20_000


def fsync_rate(directory: Path, count: int) -> float:
    """Operations per second of create + write 1.4 KB + fsync + close + unlink."""
    probe_dir = Path(tempfile.mkdtemp(prefix="fsync-probe.", dir=directory))
    data = b"x" * 1400
    try:
        start = time.perf_counter()
        for n in range(count):
            path = probe_dir / str(n)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            path.unlink()
        return count / (time.perf_counter() - start)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def bench_message(serial: int) -> Any:
    from mta.queue import Message, Notify, Recipient

    return Message(
        sender=f"sender{serial}@example.org",
        recipients=tuple(
            Recipient(f"user{serial}.{n}@example.net", notify=Notify.FAILURE)
            for n in range(serial % 3 + 1)
        ),
        content=(f"Received: from client{serial}\r\n\r\n".encode() + b"x" * MESSAGE_BYTES)[
            :MESSAGE_BYTES
        ],
        extras={"client_address": "192.0.2.1", "helo_name": "client.example"},
    )


def run_batches(queue_dir: Path, batch: int, total: int) -> float:
    """Messages per second enqueued in transactions of `batch` messages (prepare included)."""
    from mta.queue import MailQueue, QueueSettings

    with MailQueue(QueueSettings(queue_dir)) as queue:
        start = time.perf_counter()
        for first in range(0, total, batch):
            queue.enqueue_prepared(
                [queue.prepare(bench_message(n)) for n in range(first, first + batch)]
            )
        return total / (time.perf_counter() - start)


def run_committer(queue_dir: Path, total: int) -> tuple[float, float]:
    """(messages per second, mean messages per commit) through one group committer."""
    from mta.queue import Committer, MailQueue, QueueSettings

    async def produce() -> tuple[float, float]:
        with MailQueue(QueueSettings(queue_dir)) as queue:
            committer = Committer(queue)
            serials = iter(range(total))

            async def producer() -> None:
                for serial in serials:
                    await committer.submit(bench_message(serial))

            start = time.perf_counter()
            await asyncio.gather(*(producer() for _ in range(PRODUCERS_PER_PROCESS)))
            elapsed = time.perf_counter() - start
            await committer.close()
            return total / elapsed, total / max(committer.commits, 1)

    return asyncio.run(produce())


def worker_main(argv: list[str]) -> None:
    """`--worker MODE DIR COUNT [BATCH]`: one measurement, printed as JSON on stdout."""
    mode, directory, count = argv[0], Path(argv[1]), int(argv[2])
    if mode == "batch":
        result = {"rate": run_batches(directory, int(argv[3]), count)}
    else:
        rate, per_commit = run_committer(directory, count)
        result = {"rate": rate, "per_commit": per_commit}
    print(json.dumps(result))


def in_child(flavour: str, args: list[str], processes: int = 1) -> list[dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    if flavour == "twin":
        env["MTA_NO_EXTENSIONS"] = "1"
    else:
        env.pop("MTA_NO_EXTENSIONS", None)
    command = [sys.executable, __file__, "--worker", *args]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, env=env) for _ in range(processes)
    ]
    results = []
    for child in children:
        output, _ = child.communicate(timeout=600)
        if child.returncode != 0:
            raise SystemExit(f"benchmark worker failed: {' '.join(command)}")
        results.append(json.loads(output))
    return results


def enqueue_rates(base: Path, quick: bool) -> list[dict[str, Any]]:
    scale = 0.2 if quick else 1.0
    rows = []
    for flavour in ("compiled", "twin"):
        for batch in BATCH_SIZES:
            total = int(max(batch * 5, {1: 500, 10: 3000, 100: 20_000}[batch] * scale))
            queue_dir = Path(tempfile.mkdtemp(prefix="queue-bench.", dir=base))
            try:
                [result] = in_child(flavour, ["batch", str(queue_dir), str(total), str(batch)])
            finally:
                shutil.rmtree(queue_dir, ignore_errors=True)
            rows.append({"flavour": flavour, "case": f"batch {batch}", **result})
        for processes in PROCESS_COUNTS:
            per_process = int(6000 * scale)
            queue_dir = Path(tempfile.mkdtemp(prefix="queue-bench.", dir=base))
            try:
                start = time.perf_counter()
                results = in_child(
                    flavour, ["committer", str(queue_dir), str(per_process)], processes
                )
                wall = time.perf_counter() - start
            finally:
                shutil.rmtree(queue_dir, ignore_errors=True)
            rows.append(
                {
                    "flavour": flavour,
                    "case": f"committer x{processes} proc",
                    "rate": sum(r["rate"] for r in results),
                    "per_commit": sum(r["per_commit"] for r in results) / len(results),
                    "wall_rate": per_process * processes / wall,
                }
            )
    return rows


def codec_rates(rounds: int) -> list[dict[str, Any]]:
    """Operations per second of each codec call, compiled and twin, in this process."""
    twins: dict[str, ModuleType] = {"twin": importlib.import_module("hotpath._queue_py")}
    try:
        twins["compiled"] = importlib.import_module("hotpath._queue")
    except ImportError:
        print("compiled hotpath._queue is not built: codec figures are for the twin only")
    rows = []
    for flavour, codec in twins.items():
        for name, call in codec_cases(codec).items():
            seconds = min(timeit.repeat(call, number=rounds, repeat=3))
            rows.append({"flavour": flavour, "case": name, "rate": rounds / seconds})
    return rows


def codec_cases(codec: ModuleType) -> dict[str, Callable[[], object]]:
    """The codec calls a queue makes per message: one envelope and three recipients."""
    queue_id = b"08DtcDm744"
    envelope_fields = (
        1_700_000_000_000_000,
        1024,
        3,
        0,
        2,
        1,
        b"sender@example.org",
        b"",
        [(b"client_address", b"192.0.2.1"), (b"helo_name", b"client.example")],
    )
    rcpt = (4, 0, 0, 0, b"user@example.net", b"", b"rfc822;user@example.net", b"", b"")
    recipients = [rcpt] * 3
    envelope = codec.encode_envelope(*envelope_fields)
    pairs = codec.encode_recipients(queue_id, recipients)
    return {
        "encode envelope": lambda: codec.encode_envelope(*envelope_fields),
        "decode envelope": lambda: codec.decode_envelope(envelope),
        "encode 3 recipients": lambda: codec.encode_recipients(queue_id, recipients),
        "decode 3 recipients": lambda: codec.decode_recipients(queue_id, iter(pairs)),
    }


def print_table(title: str, rows: list[dict[str, Any]], extra: str | None = None) -> None:
    cases = list(dict.fromkeys(row["case"] for row in rows))
    by_key = {(row["flavour"], row["case"]): row for row in rows}
    print(f"\n{title}")
    header = f"{'case':<24}{'compiled/s':>14}{'twin/s':>14}{'gain':>8}"
    print(header + (f"{extra:>14}" if extra else ""))
    for case in cases:
        compiled = by_key.get(("compiled", case))
        twin = by_key.get(("twin", case))
        c_rate = compiled["rate"] if compiled else float("nan")
        t_rate = twin["rate"] if twin else float("nan")
        line = f"{case:<24}{c_rate:>14,.0f}{t_rate:>14,.0f}{c_rate / t_rate:>7.2f}x"
        if extra and compiled and extra in compiled:
            line += f"{compiled[extra]:>14.1f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the queues under test live (default: the temp dir)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--quick", action="store_true", help="fewer messages, rougher figures")
    args = parser.parse_args()
    fsync = fsync_rate(args.dir, FSYNC_PROBE_OPS)
    print(f"fsync probe in {args.dir}: {fsync:,.0f} create+write+fsync+unlink per second")
    enqueue = enqueue_rates(args.dir, args.quick)
    print_table(
        "durable enqueue, messages per second (1 KiB, 1-3 recipients)", enqueue, extra="per_commit"
    )
    codec = codec_rates(MICRO_ROUNDS // 5 if args.quick else MICRO_ROUNDS)
    print_table("record codec, calls per second", codec)
    if args.json:
        args.json.write_text(
            json.dumps({"fsync_per_s": fsync, "enqueue": enqueue, "codec": codec}, indent=2) + "\n"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2:])
    else:
        main()
