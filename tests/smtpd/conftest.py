"""Fixtures of the smtpd tests. Queue directories live in short paths under /tmp so that the
qmgr trigger socket path fits AF_UNIX's limit.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import RunningServer, StartServer


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="smtpd-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def start_server(short_tmp: Path) -> Iterator[StartServer]:
    """start_server(main_cf_text="") -> a running worker; all are stopped after the test."""
    servers: list[RunningServer] = []

    def start(main_cf: str = "") -> RunningServer:
        directory = short_tmp / str(len(servers))
        directory.mkdir()
        server = RunningServer(directory, main_cf)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> RunningServer:
    return start_server()
