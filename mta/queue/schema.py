"""The LMDB queue's schema: every named database, the queue names, and how the env is opened.

This is the one place that declares the queue's layout (ARCHITECTURE.md, "The queue (LMDB)"):

  msg          queue id -> envelope record (hotpath.queue.encode_envelope)
  body         queue id -> message content, headers + body with CRLF lines as received; kept
               apart from envelopes so that scans never page bodies in
  rcpt         queue id + u32 index -> recipient record (hotpath.queue.encode_recipient)
  q:<name>     one index per queue (incoming, active, deferred, hold, corrupt): queue id -> b""
  by_next_try  u64 microseconds + queue id -> b"": when each deferred message is due
  meta         schema_version -> u32, last_stamp -> u64 (the last queue id stamp handed out)

A message is in exactly one queue index; moving it is one write transaction, the equivalent
of Postfix's rename(). The environment is durable (sync and metasync on, no writemap or
map_async) unless `queue_sync = unsafe`, which is for RAM-disk benchmarks only: it may lose
acknowledged mail on a crash.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from pathlib import Path

import lmdb

SCHEMA_VERSION = 1

MSG_DB = b"msg"
BODY_DB = b"body"
RCPT_DB = b"rcpt"
NEXT_TRY_DB = b"by_next_try"
META_DB = b"meta"

META_SCHEMA_VERSION = b"schema_version"
META_LAST_STAMP = b"last_stamp"
META_U32 = struct.Struct(">I")
META_U64 = struct.Struct(">Q")

MAX_DATABASES = 16
DEFAULT_MAX_READERS = 512


class QueueName(enum.StrEnum):
    """The queues a message moves through, as Postfix names them."""

    INCOMING = "incoming"
    ACTIVE = "active"
    DEFERRED = "deferred"
    HOLD = "hold"
    CORRUPT = "corrupt"

    @property
    def db_name(self) -> bytes:
        return b"q:" + self.value.encode("ascii")


class SyncMode(enum.StrEnum):
    """`queue_sync`: full (fsync every commit, the default) or unsafe (RAM-disk benchmarks)."""

    FULL = "full"
    UNSAFE = "unsafe"


class SchemaError(Exception):
    """The environment on disk has another schema version than this code."""


@dataclass(frozen=True)
class Databases:
    """The handles of every named database of one open environment."""

    msg: lmdb._Database
    body: lmdb._Database
    rcpt: lmdb._Database
    next_try: lmdb._Database
    meta: lmdb._Database
    queues: dict[QueueName, lmdb._Database]


def open_environment(
    directory: Path,
    *,
    sync: SyncMode,
    map_size: int,
    readonly: bool,
    max_readers: int = DEFAULT_MAX_READERS,
    metasync: bool = True,
) -> tuple[lmdb.Environment, Databases]:
    """Open (and, unless readonly, create) the queue environment and all its databases.

    metasync=False (LMDB's MDB_NOMETASYNC, a per-process flag) still fsyncs each commit's
    data pages but not its meta page: the database stays intact, and a system crash may undo
    this process's last commit. Only writers whose last commit may be undone use it (qmgr).

    Raises lmdb.Error (for example ReadonlyError on EACCES) and SchemaError; the caller turns
    them into its own errors.
    """
    durable = sync is SyncMode.FULL
    env = lmdb.open(
        str(directory),
        map_size=map_size,
        max_dbs=MAX_DATABASES,
        max_readers=max_readers,
        readonly=readonly,
        create=not readonly,
        sync=durable,
        metasync=durable and metasync,
        map_async=not durable,
        writemap=False,
        readahead=False,
        lock=True,
    )
    try:
        try:
            databases = _open_databases(env, readonly=readonly)
        except lmdb.MapResizedError:
            # Another process grew the map between our open and our first transaction.
            env.set_mapsize(0)
            databases = _open_databases(env, readonly=readonly)
    except BaseException:
        env.close()
        raise
    return env, databases


def _open_databases(env: lmdb.Environment, *, readonly: bool) -> Databases:
    """Open every named database and check the schema version."""

    def db(name: bytes) -> lmdb._Database:
        return env.open_db(name, create=not readonly)

    databases = Databases(
        msg=db(MSG_DB),
        body=db(BODY_DB),
        rcpt=db(RCPT_DB),
        next_try=db(NEXT_TRY_DB),
        meta=db(META_DB),
        queues={name: db(name.db_name) for name in QueueName},
    )
    _check_schema(env, databases.meta, readonly=readonly)
    return databases


def _check_schema(env: lmdb.Environment, meta: lmdb._Database, *, readonly: bool) -> None:
    with env.begin(db=meta, write=not readonly) as txn:
        stored = txn.get(META_SCHEMA_VERSION)
        if stored is None and not readonly:
            txn.put(META_SCHEMA_VERSION, META_U32.pack(SCHEMA_VERSION))
            return
        version = META_U32.unpack(stored)[0] if stored and len(stored) == 4 else None
        if version != SCHEMA_VERSION:
            raise SchemaError(f"queue schema version {version}, this code needs {SCHEMA_VERSION}")
