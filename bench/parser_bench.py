"""Benchmark the SMTP protocol engine: compiled `_parser` against its twin `_parser_py`.

Both run in the same process, one after the other, on the same inputs, so the ratio holds
even on a noisy shared machine. Measures:
- commands/s: whole transactions (EHLO, MAIL, RCPT, DATA, a small message, QUIT) fed one
  command per receive_data, as a non-pipelining client sends them;
- pipelined commands/s: MAIL, RCPT, DATA in one read (RFC 2920);
- DATA MB/s: a large message of 76-octet lines, some starting with a dot, in 64 KiB reads;
- dot-stuffing MB/s: the client side preparing the same message for DATA;
- reply parsing replies/s: multi-line EHLO replies and single-line replies.

Usage: python bench/parser_bench.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hotpath.events import Data, DataChunk, Hello, Quit

READ_SIZE = 65536
MESSAGE = (
    b"From: a@example.com\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n"
    + b"x" * 70
    + b"\r\n.a line that starts with a dot\r\n"
)
SESSION_COMMANDS = (
    b"EHLO client.example.com\r\n",
    b"MAIL FROM:<sender@example.com> SIZE=1000 BODY=8BITMIME\r\n",
    b"RCPT TO:<recipient@example.org> NOTIFY=FAILURE\r\n",
    b"DATA\r\n",
)


# The caller's side kept to one dict lookup and one reply() per event, so that the figures are
# mostly the engine's own work.
REPLIES: dict[type, tuple[int, str | tuple[str, ...], str | None]] = {
    Hello: (250, ("mx.example.com", "PIPELINING", "SIZE 10240000", "8BITMIME"), None),
    Data: (354, "End data with <CR><LF>.<CR><LF>", None),
    Quit: (221, "Bye", "2.0.0"),
}
DEFAULT_REPLY = (250, "Ok", "2.0.0")


def _drain(engine: Any) -> int:
    events = 0
    while (event := engine.next_event()) is not None:
        if type(event) is not DataChunk:
            engine.reply(*REPLIES.get(type(event), DEFAULT_REPLY))
        events += 1
    return events


def _session(impl: ModuleType, reads: list[bytes]) -> int:
    engine = impl.ServerEngine()
    engine.reply(220, "mx.example.com ESMTP")
    commands = 0
    for data in reads:
        engine.receive_data(data)
        commands += _drain(engine)
        engine.data_to_send()
    return commands


def bench_commands(impl: ModuleType, sessions: int) -> float:
    reads = [*SESSION_COMMANDS, MESSAGE + b".\r\n", b"QUIT\r\n"]
    started = time.perf_counter()
    commands = sum(_session(impl, reads) for _ in range(sessions))
    return commands / (time.perf_counter() - started)


def bench_pipelined(impl: ModuleType, sessions: int) -> float:
    transaction = b"".join(SESSION_COMMANDS[1:]) + MESSAGE + b".\r\n"
    reads = [SESSION_COMMANDS[0], *([transaction] * 10), b"QUIT\r\n"]
    started = time.perf_counter()
    commands = sum(_session(impl, reads) for _ in range(sessions))
    return commands / (time.perf_counter() - started)


def _big_message(megabytes: int) -> bytes:
    lines = []
    for number in range(megabytes * 1024 * 1024 // 78):
        lines.append((b"." if number % 50 == 0 else b"L") + b"%075d\r\n" % number)
    return b"".join(lines)


def bench_data(impl: ModuleType, body: bytes) -> float:
    engine = impl.ServerEngine(impl.DEFAULT_LIMITS.__class__(message_size_limit=0))
    engine.reply(220, "mx")
    for command in SESSION_COMMANDS:
        engine.receive_data(command)
        _drain(engine)
    stream = body + b".\r\n"
    started = time.perf_counter()
    for offset in range(0, len(stream), READ_SIZE):
        engine.receive_data(stream[offset : offset + READ_SIZE])
        _drain(engine)
    elapsed = time.perf_counter() - started
    return len(body) / elapsed / 1e6


def bench_dot_stuff(impl: ModuleType, body: bytes) -> float:
    started = time.perf_counter()
    stuffer = impl.DotStuffer(998)
    for offset in range(0, len(body), READ_SIZE):
        stuffer.feed(body[offset : offset + READ_SIZE])
    stuffer.finish()
    return len(body) / (time.perf_counter() - started) / 1e6


def bench_replies(impl: ModuleType, rounds: int) -> float:
    data = (
        b"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4bq9Xk2Zz1\r\n"
    )
    started = time.perf_counter()
    replies = 0
    for _ in range(rounds):
        parser = impl.ReplyParser()
        parser.receive_data(data)
        while parser.next_reply() is not None:
            replies += 1
    return replies / (time.perf_counter() - started)


def _best(measure: Callable[[], float], repeats: int) -> float:
    return max(measure() for _ in range(repeats))


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--quick", action="store_true", help="smaller inputs, one repeat")
    arguments.add_argument("--json", metavar="FILE", help="write the results as JSON")
    options = arguments.parse_args()
    sessions, megabytes, repeats = (500, 2, 1) if options.quick else (4000, 16, 3)
    implementations = {"twin": importlib.import_module("hotpath._parser_py")}
    if os.environ.get("MTA_NO_EXTENSIONS") != "1":
        implementations["compiled"] = importlib.import_module("hotpath._parser")
    body = _big_message(megabytes)
    cases: dict[str, Callable[[ModuleType], float]] = {
        "commands/s (one per read)": lambda impl: bench_commands(impl, sessions),
        "commands/s (pipelined)": lambda impl: bench_pipelined(impl, sessions // 4),
        "DATA MB/s (64 KiB reads)": lambda impl: bench_data(impl, body),
        "dot-stuffing MB/s": lambda impl: bench_dot_stuff(impl, body),
        "replies/s (client side)": lambda impl: bench_replies(impl, sessions * 2),
    }
    results: dict[str, dict[str, float]] = {}
    print(f"{'measure':28} " + " ".join(f"{name:>12}" for name in implementations) + "   ratio")
    for label, case in cases.items():
        row = {
            name: _best(lambda impl=impl, case=case: case(impl), repeats)  # type: ignore[misc]
            for name, impl in implementations.items()
        }
        results[label] = row
        ratio = f"{row['compiled'] / row['twin']:7.1f}x" if "compiled" in row else ""
        print(f"{label:28} " + " ".join(f"{value:12,.1f}" for value in row.values()) + f"  {ratio}")
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"python": sys.version, "machine": platform.machine(), "results": results},
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
