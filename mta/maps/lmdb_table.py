"""lmdb: indexed tables built by `mta map build FILE` (postmap(1)) and read by the services.

    build_lmdb(Path("/etc/mta/virtual"))  -> writes /etc/mta/virtual.lmdb
    lmdb:/etc/mta/virtual                 -> reads /etc/mta/virtual.lmdb

The source is `key value` lines (see mta.maps.source); keys are folded to lower case. A build
writes a new LMDB file beside the old one and renames it into place, so a running MTA never
sees a half-built table: its reader keeps the old file (open, unlinked) until it notices, at
most REOPEN_CHECK_SECONDS later, that the name has a new inode or mtime, and then reopens.
Readers open the file read-only without a lock file: nothing ever writes to a file that has
a reader, because a rebuild always makes a new file.

The open environment is the cache (as Postfix keeps its tables open), shared by every table
object of the process that reads the same file (LMDB allows one open per file and process);
each lookup is one read transaction. Bounds: the source size (MAX_TABLE_FILE_BYTES), its
lines, keys, values and entries (mta.maps.table).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb

from mta.maps.source import parse_key_value, read_table_file
from mta.maps.table import LookupTable, TableUnavailable, first_line, fold_key, key_fits

SUFFIX = ".lmdb"
REOPEN_CHECK_SECONDS = 1.0
INITIAL_MAP_BYTES = 1024 * 1024
MAX_MAP_BYTES = 64 * 1024 * 1024 * 1024
OPEN_ATTEMPTS = 3


@dataclass(frozen=True)
class BuildResult:
    path: Path
    entries: int
    warnings: list[str]


def build_lmdb(source: Path) -> BuildResult:
    """Build source + ".lmdb" from the postmap source file, replacing any old one atomically."""
    spec = f"lmdb:{source}"
    parsed = parse_key_value(read_table_file(source, spec), str(source))
    target = source.with_name(source.name + SUFFIX)
    payload = sum(len(key) + len(value) for key, value in parsed.entries.items())
    map_size = max(INITIAL_MAP_BYTES, 4 * payload + 128 * len(parsed.entries))
    handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        while True:
            try:
                _write_environment(temporary, parsed.entries, map_size)
                break
            except lmdb.MapFullError:
                if map_size >= MAX_MAP_BYTES:
                    raise
                map_size *= 2
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
        Path(f"{temporary}-lock").unlink(missing_ok=True)
    return BuildResult(target, len(parsed.entries), parsed.warnings)


def _write_environment(path: Path, entries: dict[str, str], map_size: int) -> None:
    path.unlink(missing_ok=True)  # a retry with a larger map starts from an empty file
    environment = lmdb.open(str(path), subdir=False, map_size=map_size, max_dbs=0, sync=False)
    try:
        with environment.begin(write=True) as transaction:
            cursor = transaction.cursor()
            items = sorted((key.encode(), value.encode()) for key, value in entries.items())
            cursor.putmulti(items, append=True)
        environment.sync(True)  # durable before the rename makes it the table
    finally:
        environment.close()


Identity = tuple[int, int, int, int]  # device, inode, mtime, size: which file a name holds


class _SharedEnvironments:
    """One open environment per file per process: LMDB refuses to open a file twice in one
    process, and tables opened separately (or a reader and postmap -q) may name the same one."""

    def __init__(self) -> None:
        self._open: dict[Identity, tuple[lmdb.Environment, int]] = {}

    def acquire(self, path: Path) -> tuple[lmdb.Environment, Identity]:
        for _attempt in range(OPEN_ATTEMPTS):
            identity = _identity(path)
            if identity in self._open:
                environment, users = self._open[identity]
                self._open[identity] = (environment, users + 1)
                return environment, identity
            environment = lmdb.open(str(path), subdir=False, readonly=True, lock=False, max_dbs=0)
            if _identity(path) == identity:
                self._open[identity] = (environment, 1)
                return environment, identity
            environment.close()  # a rebuild replaced the file while it was opened: again
        raise lmdb.Error(f"{path} keeps being replaced")

    def release(self, identity: Identity) -> None:
        environment, users = self._open[identity]
        if users > 1:
            self._open[identity] = (environment, users - 1)
        else:
            del self._open[identity]
            environment.close()


def _identity(path: Path) -> Identity:
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)


_environments = _SharedEnvironments()


class LmdbTable(LookupTable):
    def __init__(self, spec: str, name: str, reopen_check_seconds: float = REOPEN_CHECK_SECONDS):
        super().__init__(spec)
        self.path = Path(name + SUFFIX)
        self.reopen_check_seconds = reopen_check_seconds
        self._environment: lmdb.Environment | None = None
        self._identity: Identity | None = None
        self._next_check = 0.0
        self._open()

    def _open(self) -> None:
        try:
            environment, identity = _environments.acquire(self.path)
        except OSError as error:
            raise self.unavailable(f"{self.path}: {error.strerror or error}") from error
        except lmdb.Error as error:
            raise self.unavailable(f"{self.path}: {first_line(error)}") from error
        self.close()
        self._environment, self._identity = environment, identity
        self._next_check = time.monotonic() + self.reopen_check_seconds

    def _reopen_if_rebuilt(self) -> None:
        self._next_check = time.monotonic() + self.reopen_check_seconds
        try:
            identity = _identity(self.path)
        except OSError:
            return  # keep answering from the file we have until a new one appears
        if identity != self._identity:
            self._open()

    def lookup(self, key: str) -> str | None:
        if time.monotonic() >= self._next_check:
            self._reopen_if_rebuilt()
        if self._environment is None:
            raise TableUnavailable(f"table {self.spec} is closed")
        key = fold_key(key)
        if not key_fits(key):
            return None
        try:
            with self._environment.begin() as transaction:
                value = transaction.get(key.encode())
        except lmdb.Error as error:
            raise self.unavailable(str(error)) from error
        return None if value is None else bytes(value).decode("utf-8", "replace")

    def close(self) -> None:
        if self._identity is not None:
            _environments.release(self._identity)
            self._environment = self._identity = None
