"""A real Dovecot LMTP server (Debian's dovecot-core + dovecot-lmtpd) in a temp folder.

    with running_dovecot() as dovecot:
        ...deliver over LMTP to 127.0.0.1:dovecot.port or the socket dovecot.socket...
        dovecot.messages("user")   # the files in <folder>/mail/user/Maildir/new

It listens on 127.0.0.1 (a free port) and on the UNIX socket run/lmtp of its folder, accepts
every user (static passdb/userdb, the recipe of shared/PEERS.md) and stores mail in Maildir.
The folder is a short path under /tmp (AF_UNIX paths are short). Dovecot daemonises; it is
stopped by the PID in run/master.pid. A missing Dovecot fails the tests; it never skips them.
"""

from __future__ import annotations

import contextlib
import os
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

from support.daemon import binary, free_port

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0

CONFIG = """\
protocols = lmtp
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
listen = 127.0.0.1
mail_location = maildir:{d}/mail/%n/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 0
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    directory: Path
    port: int

    @property
    def socket(self) -> Path:
        return self.directory / "run" / "lmtp"

    def messages(self, user: str) -> list[bytes]:
        new = self.directory / "mail" / user / "Maildir" / "new"
        if not new.is_dir():
            return []
        return [path.read_bytes() for path in sorted(new.iterdir())]

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _listening(port: int, path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as probe:
            return probe.recv(256).startswith(b"220")
    except OSError:
        return False


@contextlib.contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    dovecot_binary = binary("dovecot", "dovecot-core, dovecot-lmtpd")
    directory = Path(tempfile.mkdtemp(prefix="mta-dove-", dir="/tmp"))
    directory.chmod(0o755)
    (directory / "mail").mkdir()
    shutil.chown(directory / "mail", "nobody")
    port = free_port()
    config = directory / "dovecot.conf"
    config.write_text(CONFIG.format(d=directory, port=port))
    dovecot = Dovecot(directory, port)
    pid_file = directory / "run" / "master.pid"
    output = directory / "start.log"
    try:
        # dovecot forks and its children keep the parent's descriptors: output goes to a file
        # (pipes would never reach end of file).
        with output.open("wb") as log:
            started = subprocess.run(
                [dovecot_binary, "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=False,
            )
        if started.returncode != 0:
            pytest.fail(f"dovecot did not start: {output.read_text()}{dovecot.log()}")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _listening(port, dovecot.socket):
            if time.monotonic() > deadline:
                pytest.fail(f"dovecot is not listening on 127.0.0.1:{port}: {dovecot.log()}")
            time.sleep(0.05)
        yield dovecot
    finally:
        # no pid file, or an empty one: dovecot never got as far as running
        with contextlib.suppress(FileNotFoundError, IndexError, ValueError, ProcessLookupError):
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                os.kill(pid, 0)  # ProcessLookupError once it is gone
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)
