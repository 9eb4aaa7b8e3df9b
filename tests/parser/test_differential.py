"""The compiled engine against its twin: same events, replies, exceptions and state.

Deselected at collection under MTA_NO_EXTENSIONS=1 (see conftest.py), never skipped.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotpath.events import ServerLimits

from .driver import split_at, state_of
from .fuzz_engine import LIMITS, REPLY_CODES
from .strategies import cuts, sessions

pytestmark = pytest.mark.needs_compiled

limits_strategy = st.sampled_from(LIMITS)
reply_choices = st.lists(st.integers(min_value=0, max_value=len(REPLY_CODES)), max_size=30)
REPLY_TEXTS: tuple[str | list[str], ...] = ("ok", ["multi", "line"], "", "bad\r\ntext", "x" * 600)


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return ("ok", call(*args))
    except Exception as error:
        reply = getattr(error, "reply", None)
        return ("raised", type(error).__name__, reply)


def trace(
    impl: ModuleType, pieces: list[bytes], limits: ServerLimits, choices: list[int]
) -> list[Any]:
    """Everything observable about one scripted session, step by step."""
    steps: list[Any] = []
    engine = impl.ServerEngine(limits)
    picks = iter(choices * 50)
    steps.append(_outcome(engine.reply, 220, "hi"))
    for piece in [*pieces, b""]:
        steps.append(("feed", _outcome(engine.receive_data, piece)))
        for _ in range(10000):
            outcome = _outcome(engine.next_event)
            steps.append(outcome)
            if outcome[0] != "ok" or outcome[1] is None:
                break
            event = outcome[1]
            if engine.awaiting_reply:
                pick = next(picks, 0)
                code = REPLY_CODES[pick] if pick < len(REPLY_CODES) else getattr(event, "code", 250)
                text = REPLY_TEXTS[pick % len(REPLY_TEXTS)]
                steps.append(_outcome(engine.reply, code, text, "2.0.0" if pick % 2 else None))
                if steps[-1][0] != "ok":
                    steps.append(_outcome(engine.reply, code, "fallback"))
            steps.append(state_of(engine))
        steps.append(("out", engine.data_to_send(), state_of(engine)))
    return steps


@settings(max_examples=300, deadline=None)
@given(data=sessions(), cut_points=cuts, limits=limits_strategy, choices=reply_choices)
def test_compiled_engine_matches_twin_on_grammar_sessions(
    twin: ModuleType,
    compiled: ModuleType,
    data: bytes,
    cut_points: list[int],
    limits: ServerLimits,
    choices: list[int],
) -> None:
    pieces = split_at(data, cut_points)
    assert trace(compiled, pieces, limits, choices) == trace(twin, pieces, limits, choices)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), cut_points=cuts, limits=limits_strategy, choices=reply_choices)
def test_compiled_engine_matches_twin_on_random_bytes(
    twin: ModuleType,
    compiled: ModuleType,
    data: bytes,
    cut_points: list[int],
    limits: ServerLimits,
    choices: list[int],
) -> None:
    pieces = split_at(data, cut_points)
    assert trace(compiled, pieces, limits, choices) == trace(twin, pieces, limits, choices)


def _client_trace(impl: ModuleType, data: bytes, cut_points: list[int], limit: int) -> list[Any]:
    steps: list[Any] = []
    parser = impl.ReplyParser(line_limit=max(limit, 4), max_lines=3)
    stuffer = impl.DotStuffer(limit)
    for piece in split_at(data, cut_points):
        steps.append(_outcome(parser.receive_data, piece))
        steps.append(_outcome(parser.next_reply))
        steps.append(_outcome(parser.next_reply))
        steps.append(_outcome(stuffer.feed, piece))
    steps.append(_outcome(stuffer.finish))
    steps.append(_outcome(impl.dot_stuff, data, limit))
    text = data.decode("utf-8", "replace")
    steps.append(_outcome(impl.decode_xtext, text, limit))
    steps.append(_outcome(impl.parse_path, text, limit % 2 == 0))
    return steps


reply_bytes = st.lists(
    st.sampled_from(
        [b"250", b"-", b" ", b"2.0.0 ", b"ok", b"\r\n", b"\n", b"\r", b".", b"550", b"+2B", b"@"]
    )
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=reply_bytes, cut_points=cuts, limit=st.sampled_from([0, 2, 3, 8, 998]))
def test_compiled_client_side_matches_twin(
    twin: ModuleType, compiled: ModuleType, data: bytes, cut_points: list[int], limit: int
) -> None:
    assert _client_trace(compiled, data, cut_points, limit) == _client_trace(
        twin, data, cut_points, limit
    )


def test_both_modules_export_the_same_names(twin: ModuleType, compiled: ModuleType) -> None:
    for name in twin.__all__:
        assert hasattr(compiled, name), name
    assert compiled.DEFAULT_LIMITS == twin.DEFAULT_LIMITS
