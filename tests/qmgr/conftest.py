"""Fixtures of the qmgr tests: an Instance in a short /tmp directory, stopped afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import Instance

MakeInstance = Callable[..., Instance]


@pytest.fixture
def make_instance() -> Iterator[MakeInstance]:
    instances: list[Instance] = []
    directories: list[Path] = []

    def make(main_cf: str = "") -> Instance:
        directory = Path(tempfile.mkdtemp(prefix="qmgr-", dir="/tmp"))
        directories.append(directory)
        instance = Instance(directory, main_cf)
        instances.append(instance)
        return instance

    yield make
    for instance in instances:
        instance.stop()
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
