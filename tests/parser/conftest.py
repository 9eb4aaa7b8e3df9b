"""Fixtures for the SMTP engine suite: every test runs against each available implementation.

`impl` is parametrized with ids `py` (hotpath._parser_py, the specification) and `c` (the
compiled hotpath._parser). With MTA_NO_EXTENSIONS=1 only `py` exists. Otherwise the compiled
module must import: if it does not, the `c` tests error out rather than skip, so a build that
silently fell back to the twin cannot pass.

Tests marked `needs_compiled` (the differential tests) are deselected at collection under
MTA_NO_EXTENSIONS=1; they are never skipped at run time.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

NO_EXTENSIONS = os.environ.get("MTA_NO_EXTENSIONS") == "1"
IMPLEMENTATIONS = {"py": "hotpath._parser_py", "c": "hotpath._parser"}
IMPL_IDS = ["py"] if NO_EXTENSIONS else ["py", "c"]

settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_compiled: compares the compiled engine with its twin")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            # An exception a compiled function swallowed ("Exception ignored in") is a bug.
            item.add_marker(
                pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
            )
    if not NO_EXTENSIONS:
        return
    deselected = [item for item in items if item.get_closest_marker("needs_compiled")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("needs_compiled")]


@pytest.fixture(scope="session", params=IMPL_IDS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The engine module under test; the compiled one must import when it is expected."""
    name: str = request.param
    return importlib.import_module(IMPLEMENTATIONS[name])


@pytest.fixture(scope="session")
def twin() -> ModuleType:
    return importlib.import_module(IMPLEMENTATIONS["py"])


@pytest.fixture(scope="session")
def compiled() -> ModuleType:
    return importlib.import_module(IMPLEMENTATIONS["c"])
