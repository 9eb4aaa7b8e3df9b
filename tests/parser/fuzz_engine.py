"""Fuzz target for the SMTP server engine and the client-side parsers.

Run with atheris when it is installed (`python tests/parser/fuzz_engine.py [libFuzzer
options]`); without it, the same target runs on random inputs for a while. The suite runs
`one_input` under hypothesis (tests/parser/test_fuzz.py), for both implementations.

The target checks the engine's promises on any input, any split and any reply: no exception
but the documented ones, every buffer within its limit, and output made of whole reply lines.
"""

from __future__ import annotations

import importlib
import os
import random
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hotpath.events import Event, InputOverflow, ReplySyntaxError, ServerLimits

REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -][^\r\n]*\r\n")
REPLY_CODES = (220, 221, 235, 250, 251, 334, 354, 421, 451, 452, 454, 500, 501, 503, 535, 550, 554)
LIMITS = (
    ServerLimits(),
    ServerLimits(bare_newline="normal"),
    ServerLimits(
        command_line_limit=64,
        auth_line_limit=80,
        message_size_limit=40,
        recipient_limit=2,
        input_buffer_limit=300,
        strict_envelope=True,
        helo_required=True,
    ),
    ServerLimits(
        bare_newline="normal", message_size_limit=0, recipient_limit=0, input_buffer_limit=12288
    ),
)
SEED_OCTETS = 8


def check_output(output: bytes) -> None:
    position = 0
    while position < len(output):
        match = REPLY_LINE.match(output, position)
        assert match is not None, f"malformed output {output[position : position + 60]!r}"
        position = match.end()


def fuzz_server(impl: ModuleType, payload: bytes, rng: random.Random, limits: ServerLimits) -> None:
    engine = impl.ServerEngine(limits)
    engine.reply(rng.choice((220, 220, 220, 554)), "greeting")
    check_output(engine.data_to_send())
    position = 0
    while position < len(payload) and not engine.closed:
        size = rng.choice((1, 2, 3, 7, 64, 512, len(payload)))
        piece = payload[position : position + size]
        position += len(piece)
        try:
            engine.receive_data(piece)
        except InputOverflow as overflow:
            assert overflow.reply.endswith(b"\r\n")
            return
        assert engine.buffered <= limits.input_buffer_limit
        drain(engine, rng, limits)
    engine.receive_data(b"")
    drain(engine, rng, limits)
    assert engine.closed or engine.next_event() is None


def drain(engine: Any, rng: random.Random, limits: ServerLimits) -> None:
    for _ in range(100000):
        event: Event | None = engine.next_event()
        if event is None:
            break
        if engine.awaiting_reply:
            code = rng.choice((*REPLY_CODES, getattr(event, "code", 250)))
            lines = rng.choice(("ok", ["multi", "line"], ""))
            engine.reply(code, lines, rng.choice((None, "2.0.0")))
    else:
        raise AssertionError("next_event() never returned None")
    if not engine.closed:
        bound = max(limits.command_line_limit, limits.auth_line_limit)
        assert engine.buffered <= bound, engine.buffered
    check_output(engine.data_to_send())


def fuzz_client(impl: ModuleType, payload: bytes, rng: random.Random) -> None:
    parser = impl.ReplyParser(line_limit=rng.choice((16, 512)), max_lines=rng.choice((2, 100)))
    try:
        for start in range(0, len(payload), 5):
            parser.receive_data(payload[start : start + 5])
            while parser.next_reply() is not None:
                pass
    except ReplySyntaxError:
        pass
    stuffer = impl.DotStuffer(rng.choice((0, 2, 998)))
    sent = b"".join(stuffer.feed(payload[i : i + 3]) for i in range(0, len(payload), 3))
    sent += stuffer.finish()
    assert sent.endswith(b".\r\n")
    assert b"\r" not in sent.replace(b"\r\n", b"") and b"\n" not in sent.replace(b"\r\n", b"")
    text = payload.decode("utf-8", "replace")
    impl.decode_xtext(text, rng.choice((0, 10, 500)))
    impl.parse_path(text, rng.choice((True, False)))


def one_input(impl: ModuleType, data: bytes) -> None:
    """Everything the target checks for one fuzzer input (seed octets, then the payload)."""
    rng = random.Random(data[:SEED_OCTETS])
    payload = data[SEED_OCTETS:]
    fuzz_server(impl, payload, rng, rng.choice(LIMITS))
    fuzz_client(impl, payload, rng)


def _implementation() -> ModuleType:
    name = "hotpath._parser_py" if os.environ.get("MTA_NO_EXTENSIONS") == "1" else "hotpath._parser"
    return importlib.import_module(name)


def main() -> None:
    impl = _implementation()
    try:
        import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        print("atheris is not installed: running 20000 random inputs instead", file=sys.stderr)
        rng = random.Random()
        for _ in range(20000):
            one_input(impl, rng.randbytes(rng.randrange(400)))
        return
    atheris.Setup(sys.argv, lambda data: one_input(impl, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
