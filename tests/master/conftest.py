"""Fixtures for masters run as real processes; the helpers live in tests/support/instance.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.instance import SMTPD_ONLY, Instance


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mst-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def instances(short_tmp: Path) -> Iterator[list[Instance]]:
    made: list[Instance] = []
    yield made
    for instance in made:
        instance.stop()


@pytest.fixture
def make_instance(short_tmp: Path, instances: list[Instance]) -> Any:
    def make(master_cf: str = SMTPD_ONLY, main_cf: str = "") -> Instance:
        directory = short_tmp / str(len(instances))
        directory.mkdir()
        instance = Instance(directory, master_cf, main_cf)
        instances.append(instance)
        return instance

    return make
