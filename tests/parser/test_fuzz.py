"""A short, bounded fuzz run of tests/parser/fuzz_engine.py inside the suite."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from .fuzz_engine import SEED_OCTETS, one_input
from .strategies import sessions


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_splits_and_replies_keep_every_promise(
    impl: ModuleType, data: bytes
) -> None:
    one_input(impl, data)


@settings(max_examples=300, deadline=None)
@given(seed=st.binary(min_size=SEED_OCTETS, max_size=SEED_OCTETS), session=sessions())
def test_grammar_sessions_with_arbitrary_replies_keep_every_promise(
    impl: ModuleType, seed: bytes, session: bytes
) -> None:
    one_input(impl, seed + session)
