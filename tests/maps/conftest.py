"""Real servers for the network tables: PostgreSQL, Redis and memcached on 127.0.0.1.

Each starts once per test session on a free loopback port, in a private temporary directory,
and is stopped by the PID the fixture started (tests/support/daemon.py). A missing server
binary fails the tests that need it (the CI installs them from ci/apt-test-packages.txt); it
never skips them. PostgreSQL refuses to run as root, so initdb and postgres run as the
`postgres` user that the Debian package creates, on a directory it owns.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.daemon import accepting, binary, free_port, start_daemon, stop_daemon

START_TIMEOUT_SECONDS = 30.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    def stop(self) -> None:
        stop_daemon(self.process)


def start(
    command: list[str], directory: Path, name: str, port: int, user: str | None = None
) -> Server:
    """Start a server and wait until it accepts connections on 127.0.0.1:port."""
    ready = functools.partial(accepting, port)
    process = start_daemon(command, directory, name, ready, START_TIMEOUT_SECONDS, user)
    return Server(process, port, directory)


def start_redis(directory: Path) -> Server:
    port = free_port()
    command = [binary("redis-server", "redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    return start(command, directory, "redis", port)


def start_memcached(directory: Path) -> Server:
    port = free_port()
    command = [binary("memcached", "memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    return start([*command, "-u", "nobody"], directory, "memcached", port)


@pytest.fixture(scope="session")
def server_directory() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mta-maps-servers-"))
    os.chmod(directory, 0o755)  # the postgres user must reach its data directory inside
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(server_directory: Path) -> Iterator[Server]:
    directory = server_directory / "redis"
    directory.mkdir()
    server = start_redis(directory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def memcached_server(server_directory: Path) -> Iterator[Server]:
    directory = server_directory / "memcached"
    directory.mkdir()
    server = start_memcached(directory)
    yield server
    server.stop()


@dataclass
class Postgres:
    server: Server
    port: int
    socket_directory: Path

    def psql(self, sql: str) -> None:
        """Run SQL as the postgres superuser over the UNIX socket, through psycopg."""
        import psycopg

        with psycopg.connect(
            host=str(self.socket_directory), port=self.port, user="postgres", dbname="postgres"
        ) as connection:
            connection.autocommit = True
            connection.execute(sql.encode())


def wait_until_ready(instance: Postgres) -> None:
    """The port opens before PostgreSQL accepts queries ("the database system is starting up")."""
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            instance.psql("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def postgres_server(server_directory: Path) -> Iterator[Postgres]:
    initdb = binary("initdb", "postgresql", "/usr/lib/postgresql/*/bin/initdb")
    postgres = binary("postgres", "postgresql", "/usr/lib/postgresql/*/bin/postgres")
    owner = pwd.getpwnam("postgres")
    directory = server_directory / "postgres"
    directory.mkdir()
    os.chown(directory, owner.pw_uid, owner.pw_gid)
    data = directory / "data"
    subprocess.run(
        [
            initdb,
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        user="postgres",
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    command = [postgres, "-D", str(data), "-p", str(port), "-k", str(directory)]
    command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    server = start(command, directory, "postgres", port, user="postgres")
    instance = Postgres(server, port, directory)
    wait_until_ready(instance)
    yield instance
    server.process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
    server.stop()
