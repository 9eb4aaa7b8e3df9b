"""Golden address rewriting, in Postfix's style: golden/NAME.cf is main.cf, NAME.in the
addresses asked, NAME.ref the expected answer of each (see golden_runner). Diff to read."""

from __future__ import annotations

import pytest

from .golden_runner import GOLDEN, run

CASES = sorted(path.stem for path in GOLDEN.glob("*.in"))


def test_every_feature_has_a_golden_case() -> None:
    assert {"canonicalise", "canonical", "masquerade", "virtual", "resolve", "transport"} <= set(
        CASES
    )


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    assert run(name) == (GOLDEN / f"{name}.ref").read_text()
