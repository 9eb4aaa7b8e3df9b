"""Real servers for the network tables: PostgreSQL, Redis and memcached on 127.0.0.1.

Each starts once per test session on a free loopback port, in a private temporary directory,
and is stopped by the PID the fixture started. A missing server binary fails the tests that
need it (the CI installs them from ci/apt-test-packages.txt); it never skips them. PostgreSQL
refuses to run as root, so initdb and postgres run as the `postgres` user that the Debian
package creates, on a directory it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.daemon import free_port

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    def stop(self) -> None:
        """SIGTERM to the PID we started (SIGINT for PostgreSQL's fast shutdown), then wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def binary(name: str, *patterns: str) -> str:
    found = shutil.which(name) or next(
        (path for pattern in patterns for path in sorted(glob.glob(pattern))), None
    )
    if found is None:
        pytest.fail(f"{name} is not installed (see ci/apt-test-packages.txt)")
    return found


def wait_for_port(server: Server, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    server.stop()
    pytest.fail(f"server did not listen on 127.0.0.1:{server.port}")


def start(command: list[str], directory: Path, port: int, user: str | None = None) -> Server:
    log = directory / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=directory, user=user
        )
    server = Server(process, port, directory)
    wait_for_port(server, log)
    return server


def start_redis(directory: Path) -> Server:
    port = free_port()
    command = [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    return start(command, directory, port)


def start_memcached(directory: Path) -> Server:
    port = free_port()
    command = [binary("memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0"]
    return start([*command, "-u", "nobody"], directory, port)


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
    initdb = binary("initdb", "/usr/lib/postgresql/*/bin/initdb")
    postgres = binary("postgres", "/usr/lib/postgresql/*/bin/postgres")
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
    log = directory / "server.log"
    with log.open("wb") as output:
        os.chown(log, owner.pw_uid, owner.pw_gid)
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=directory, user="postgres"
        )
    server = Server(process, port, directory)
    wait_for_port(server, log)
    instance = Postgres(server, port, directory)
    wait_until_ready(instance)
    yield instance
    process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
    server.stop()
