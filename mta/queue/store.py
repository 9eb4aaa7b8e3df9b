"""The mail queue on LMDB: enqueue, move between queues, record results, read back, delete.

Follows ARCHITECTURE.md "The queue (LMDB)" and the schema in mta.queue.schema. Each public
write is one LMDB write transaction (MailQueue.transaction runs several of them, as
QueueTransaction methods, in one): either all of it is durable (sync and metasync on) or
none of it is, which is what Postfix gets from writing a file and rename()-ing it. On
MapFullError the transaction is aborted, the map grown (doubling, up to queue_max_size) and
the transaction retried; past queue_max_size, or when the disk is full (ENOSPC), the write
fails with QueueFullError and nothing already queued is touched.

Trust: records are decoded by hotpath.queue, which checks every length; a record that does
not decode is logged (logger "mta.queue") and its message moved to the corrupt queue, never
allowed to crash a reader. Queue ids handed in by users are validated before use.

Threads: one MailQueue per process and environment (py-lmdb refuses a second open). A write
transaction must stay in the thread that began it; growing the map needs no other transaction
of this process to be open, so a process that grows the map (smtpd's committer, qmgr) writes
from one thread.

Parameters (main.cf): queue_directory; queue_sync (full | unsafe, default full);
queue_map_size (initial map, default 64 MiB); queue_max_size (default 16 GiB);
message_size_limit (default 10240000).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import lmdb

from hotpath.queue import (
    QUEUE_ID_LENGTH,
    RecipientFields,
    RecordError,
    decode_envelope,
    decode_recipient,
    decode_recipients,
    encode_envelope,
    encode_recipient,
    encode_recipients,
    format_queue_id,
    pack_rcpt_key,
    pack_time_key,
    parse_queue_id,
)
from mta.queue.errors import QueueAccessError, QueueError, QueueFullError, UnknownQueueIdError
from mta.queue.message import (
    BodyType,
    DsnRet,
    EnvelopeFlag,
    Message,
    MessageLimits,
    Notify,
    QueuedMessage,
    Recipient,
    RecipientResult,
    RecipientState,
    RecipientStatus,
    check_length,
    decode_text,
    encode_text,
    from_micros,
    to_micros,
)
from mta.queue.schema import (
    DEFAULT_MAX_READERS,
    META_LAST_STAMP,
    META_U64,
    QueueName,
    SchemaError,
    SyncMode,
    open_environment,
)

log = logging.getLogger("mta.queue")

QUEUE_ID_PLACEHOLDER = b"\0" * QUEUE_ID_LENGTH
"""Stands for the queue id in Message.trace_header: no client can send NUL into a header."""

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_SIZE = 16 * 1024 * 1024 * 1024
LOCATE_ORDER = (
    QueueName.ACTIVE,
    QueueName.INCOMING,
    QueueName.DEFERRED,
    QueueName.HOLD,
    QueueName.CORRUPT,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where the queue lives and how far it may grow."""

    directory: Path
    sync: SyncMode = SyncMode.FULL
    map_size: int = DEFAULT_MAP_SIZE
    max_size: int = DEFAULT_MAX_SIZE
    max_readers: int = DEFAULT_MAX_READERS
    limits: MessageLimits = field(default_factory=MessageLimits)
    metasync: bool = True
    """Fsync LMDB's meta page on every commit (with sync full). qmgr alone turns it off: a
    crash may then undo its last commit, which only puts taken mail back in incoming
    (recover_active does so anyway) or forgets results whose status lines are already logged
    (the mail is delivered again: at least once, as Postfix's qmgr, which does not fsync
    after delivery either). Data pages are still fsynced, so the database cannot be corrupted,
    and smtpd, whose commits stand behind a 250, keeps the full sync."""

    @classmethod
    def from_parameters(cls, directory: Path, get: Callable[[str], str]) -> QueueSettings:
        """Build settings from main.cf parameters; get(name) returns "" when unset."""

        def number(name: str, default: int) -> int:
            text = get(name).strip()
            if not text:
                return default
            if not text.isdigit():
                raise QueueError(f"{name} = {text!r}: expected a number of bytes")
            return int(text)

        sync_text = get("queue_sync").strip() or SyncMode.FULL.value
        try:
            sync = SyncMode(sync_text)
        except ValueError:
            raise QueueError(f"queue_sync = {sync_text!r}: expected full or unsafe") from None
        limits = replace(
            MessageLimits(),
            max_content_bytes=number("message_size_limit", MessageLimits().max_content_bytes),
        )
        return cls(
            directory=directory,
            sync=sync,
            map_size=number("queue_map_size", DEFAULT_MAP_SIZE),
            max_size=number("queue_max_size", DEFAULT_MAX_SIZE),
            limits=limits,
        )


@dataclass(frozen=True, slots=True)
class Intake:
    """What MailQueue.read_intake found: due deferred mail and new mail, still in their queues."""

    due: list[QueuedMessage]
    incoming: list[QueuedMessage]


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A message encoded for the queue: everything but the keys, which need its queue id."""

    envelope: bytes
    trace_header: bytes
    content: bytes
    recipients: list[RecipientFields]
    on_hold: bool = False


def _id_key(queue_id: str) -> bytes:
    """The database key of a user-supplied queue id; UnknownQueueIdError if it cannot be one."""
    try:
        parse_queue_id(queue_id)
    except RecordError:
        raise UnknownQueueIdError(f"{queue_id!r} is not a queue id") from None
    return queue_id.encode("ascii")


class MailQueue:
    """One process's handle on the queue environment."""

    def __init__(self, settings: QueueSettings, *, create: bool = True) -> None:
        self.settings = settings
        directory = settings.directory
        try:
            if create:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            elif not directory.is_dir():
                raise QueueError(f"queue directory {directory} does not exist")
            self._env, self._db = open_environment(
                directory,
                sync=settings.sync,
                map_size=min(settings.map_size, settings.max_size),
                readonly=False,
                max_readers=settings.max_readers,
                metasync=settings.metasync,
            )
        except PermissionError as error:
            raise QueueAccessError(f"queue directory {directory}: {error.strerror}") from error
        except lmdb.ReadonlyError as error:
            raise QueueAccessError(f"queue directory {directory}: permission denied") from error
        except (lmdb.Error, SchemaError, OSError) as error:
            raise QueueError(f"cannot open the queue in {directory}: {error}") from error

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> MailQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    def _begin(self, *, write: bool) -> lmdb.Transaction:
        """Begin a transaction; reads hand out zero-copy buffers, valid until it ends."""
        try:
            return self._open_transaction(write)
        except lmdb.MapResizedError:
            # Another process grew the map past ours: adopt its size, as LMDB asks.
            self._env.set_mapsize(0)
            return self._open_transaction(write)

    def _open_transaction(self, write: bool) -> lmdb.Transaction:
        if write:
            return self._env.begin(write=True)
        return self._env.begin(buffers=True)

    def _write(self, work: Callable[[lmdb.Transaction], T]) -> T:
        """Run work in one write transaction, growing the map on MapFullError and retrying."""
        while True:
            try:
                with self._begin(write=True) as txn:
                    return work(txn)
            except lmdb.MapFullError:
                self._grow_map()
            except lmdb.DiskError as error:
                raise QueueFullError("disk full (ENOSPC) while writing the queue") from error

    def _grow_map(self) -> None:
        current = self._env.info()["map_size"]
        if current >= self.settings.max_size:
            raise QueueFullError(f"queue is at queue_max_size ({self.settings.max_size} bytes)")
        grown = min(current * 2, self.settings.max_size)
        self._env.set_mapsize(grown)
        log.info("queue map grown from %d to %d bytes", current, grown)

    def clear_stale_readers(self) -> int:
        """Free the reader slots of processes that died with a read transaction open."""
        return self._env.reader_check()

    # -- enqueue ------------------------------------------------------------------------------

    def prepare(self, message: Message) -> PreparedMessage:
        """Check a message against the limits and encode its records (MessageLimitError if over)."""
        message.check_limits(self.settings.limits)
        flags = EnvelopeFlag.SMTPUTF8 if message.smtputf8 else EnvelopeFlag(0)
        envelope = encode_envelope(
            to_micros(message.arrival_time),
            message.size,
            len(message.recipients),
            int(flags),
            int(message.body_type),
            int(message.dsn_ret),
            encode_text(message.sender),
            encode_text(message.envid),
            [(encode_text(name), encode_text(value)) for name, value in message.extras.items()],
        )
        recipients: list[RecipientFields] = [
            (
                int(recipient.notify),
                int(RecipientStatus.PENDING),
                0,
                0,
                encode_text(recipient.address),
                encode_text(recipient.orig_address),
                encode_text(recipient.orcpt),
                b"",
                b"",
            )
            for recipient in message.recipients
        ]
        return PreparedMessage(
            envelope, message.trace_header, message.content, recipients, message.hold
        )

    def enqueue(self, messages: Sequence[Message]) -> list[str]:
        """Queue messages in one transaction (incoming, or hold); return their queue ids."""
        return self.enqueue_prepared([self.prepare(message) for message in messages])

    def enqueue_prepared(self, batch: Sequence[PreparedMessage]) -> list[str]:
        """Queue prepared messages in one durable transaction; return their queue ids."""
        return self.transaction(lambda txn: txn.enqueue_prepared(batch))

    def transaction(self, work: Callable[[QueueTransaction], T]) -> T:
        """Run work in one write transaction: everything it does commits together or not at all.

        For callers that need several changes in one commit (qmgr records results, deletes
        finished mail and marks the mail it works on active in one fsync). Work may run more
        than once (after the map has grown), so it must change nothing outside the queue.
        """
        return self._write(lambda txn: work(QueueTransaction(self, txn)))

    def move(
        self,
        queue_ids: Iterable[str],
        target: QueueName,
        *,
        only_from: Collection[QueueName] | None = None,
        next_try: float | None = None,
    ) -> list[str]:
        """Move messages to target in one transaction; return the ids that moved.

        Ids that are unknown, already in target, or (with only_from) in another queue are
        left alone. A move to deferred is due at next_try (default: now).
        """
        ids = list(queue_ids)  # the work may run twice: an iterator would be spent
        return self.transaction(lambda txn: txn.move(ids, target, only_from, next_try))

    def read_intake(
        self,
        limit: int,
        held: Container[str],
        due_before: float | None,
        due_first: int | None = None,
    ) -> Intake:
        """qmgr's intake without a write: up to limit messages from one read snapshot, first
        up to due_first (None: limit) deferred ones due at or before due_before (None: no
        deferred mail), earliest first, then incoming, oldest first, then more due deferred
        ones if incoming left room, skipping the ids in held. due_first is qmgr's fair share
        of deferred mail, so that a backlog of it cannot crowd new mail out.

        Nothing moves: they stay where they are until qmgr records their results or marks
        them active (QueueTransaction.move) in a later write. held is the caller's set of ids
        it is already working on, which the queue still shows in incoming or deferred.
        Corrupt messages are moved to the corrupt queue after the snapshot.
        """
        corrupt: list[tuple[bytes, str]] = []
        due: list[QueuedMessage] = []
        incoming: list[QueuedMessage] = []
        first = limit if due_first is None else min(due_first, limit)
        with self._begin(write=False) as txn:
            due_keys: Iterator[bytes] = iter(())
            if due_before is not None:
                due_keys = _due_keys(txn.cursor(db=self._db.next_try), to_micros(due_before))
                self._read_unheld(txn, QueueName.DEFERRED, due_keys, held, first, due, corrupt)
            incoming_cursor = txn.cursor(db=self._db.queues[QueueName.INCOMING])
            incoming_keys = (bytes(key) for key in incoming_cursor.iternext(values=False))
            self._read_unheld(
                txn, QueueName.INCOMING, incoming_keys, held, limit - len(due), incoming, corrupt
            )
            if len(due) == first:  # the share was used up: there may be more
                self._read_unheld(
                    txn, QueueName.DEFERRED, due_keys, held, limit - len(incoming), due, corrupt
                )
        self._quarantine(corrupt)
        return Intake(due, incoming)

    def _read_unheld(
        self,
        txn: lmdb.Transaction,
        queue: QueueName,
        keys: Iterable[bytes],
        held: Container[str],
        limit: int,
        into: list[QueuedMessage],
        corrupt: list[tuple[bytes, str]],
    ) -> None:
        """Read messages of keys that are in queue and not held into `into` until it holds
        limit."""
        if len(into) >= limit:
            return
        table = self._db.queues[queue]
        for key in keys:
            if key.decode("ascii") in held or txn.get(key, db=table) is None:
                continue
            message = self._read(txn, key, queue, corrupt)
            if message is not None:
                into.append(message)
                if len(into) >= limit:
                    return

    def recover_active(self) -> int:
        """At qmgr start: return whatever a previous run left in active to incoming."""
        recovered = self.transaction(QueueTransaction.recover_active)
        if recovered:
            log.info("returned %d messages from active to incoming", recovered)
        return recovered

    def flush_deferred(self, now: float | None = None) -> int:
        """Make every deferred message due now (postqueue -f); return how many."""
        return self.transaction(lambda txn: txn.flush_deferred(now))

    def record_results(self, results: Sequence[RecipientResult]) -> list[str]:
        """Write delivery results in one transaction; return the ids now fully done."""
        return self.transaction(lambda txn: txn.record_results(results))

    def delete(self, queue_ids: Iterable[str]) -> list[str]:
        """Delete messages (envelope, content, recipients, indexes) in one transaction."""
        keys = [_id_key(queue_id) for queue_id in queue_ids]
        return self.transaction(lambda txn: txn.delete_keys(keys))

    # -- placing a message in a queue ---------------------------------------------------------

    def _locate(self, txn: lmdb.Transaction, key: bytes) -> QueueName | None:
        for name in LOCATE_ORDER:
            if txn.get(key, db=self._db.queues[name]) is not None:
                return name
        return None

    def _place(
        self,
        txn: lmdb.Transaction,
        key: bytes,
        current: QueueName,
        target: QueueName,
        next_try_us: int = 0,
    ) -> None:
        """Take key out of queue current (and the next-try index) and put it in target."""
        queues = self._db.queues
        if current is QueueName.DEFERRED:
            due = txn.get(key, db=queues[current])
            if due is not None and len(due) == 8:
                txn.delete(pack_time_key(META_U64.unpack(due)[0], key), db=self._db.next_try)
        txn.delete(key, db=queues[current])
        if target is QueueName.DEFERRED:
            txn.put(key, META_U64.pack(next_try_us), db=queues[target])
            txn.put(pack_time_key(next_try_us, key), b"", db=self._db.next_try)
        else:
            txn.put(key, b"", db=queues[target])

    # -- reading ------------------------------------------------------------------------------

    def locate(self, queue_id: str) -> QueueName | None:
        """The queue a message is in, or None if there is no such message."""
        key = _id_key(queue_id)
        with self._begin(write=False) as txn:
            return self._locate(txn, key)

    def get(self, queue_id: str) -> QueuedMessage:
        """Read one message's envelope and recipients; UnknownQueueIdError if it is not queued."""
        key = _id_key(queue_id)
        corrupt: list[tuple[bytes, str]] = []
        with self._begin(write=False) as txn:
            current = self._locate(txn, key)
            if current is None:
                raise UnknownQueueIdError(f"{queue_id}: no such message in the queue")
            message = self._read(txn, key, current, corrupt)
        self._quarantine(corrupt)
        if message is None:
            raise QueueError(f"{queue_id}: corrupt queue records, moved to the corrupt queue")
        return message

    def content(self, queue_id: str) -> bytes:
        """The message content (headers and body); UnknownQueueIdError if there is none."""
        key = _id_key(queue_id)
        with self._begin(write=False) as txn:
            content = txn.get(key, db=self._db.body)
            if content is None:
                raise UnknownQueueIdError(f"{queue_id}: no such message in the queue")
            return bytes(content)

    def queue_ids(self, queue: QueueName) -> list[str]:
        """Every queue id in one queue, oldest first."""
        with self._begin(write=False) as txn:
            cursor = txn.cursor(db=self._db.queues[queue])
            return [bytes(key).decode("ascii") for key in cursor.iternext(values=False)]

    def count(self, queue: QueueName) -> int:
        with self._begin(write=False) as txn:
            entries: int = txn.stat(self._db.queues[queue])["entries"]
            return entries

    def scan(self, queues: Iterable[QueueName] = tuple(QueueName)) -> Iterator[QueuedMessage]:
        """Every message of the given queues, queue by queue, oldest first, in one snapshot.

        Corrupt messages are skipped, logged and (after the snapshot) moved to corrupt.
        """
        corrupt: list[tuple[bytes, str]] = []
        try:
            with self._begin(write=False) as txn:
                for queue in queues:
                    cursor = txn.cursor(db=self._db.queues[queue])
                    for key in cursor.iternext(values=False):
                        message = self._read(txn, bytes(key), queue, corrupt)
                        if message is not None:
                            yield message
        finally:
            self._quarantine(corrupt)

    def _read(
        self,
        txn: lmdb.Transaction,
        key: bytes,
        queue: QueueName,
        corrupt: list[tuple[bytes, str]],
    ) -> QueuedMessage | None:
        envelope = txn.get(key, db=self._db.msg)
        try:
            if envelope is None:
                raise RecordError("envelope record missing")
            arrival, size, _, flags, body, ret, sender, envid, extras = decode_envelope(envelope)
            states = decode_recipients(key, _iter_from(txn.cursor(db=self._db.rcpt), key))
            recipients = tuple(_recipient_state(index, fields) for index, fields in states)
            queue_id = key.decode("ascii")
        except (RecordError, ValueError) as error:
            if queue is not QueueName.CORRUPT:
                corrupt.append((key, str(error)))
            return None
        return QueuedMessage(
            queue_id=queue_id,
            queue_name=queue.value,
            arrival_time=from_micros(arrival),
            sender=decode_text(sender),
            size=size,
            recipients=recipients,
            extras={decode_text(name): decode_text(value) for name, value in extras},
            dsn_ret=DsnRet(ret),
            envid=decode_text(envid),
            body_type=BodyType(body),
            smtputf8=bool(flags & EnvelopeFlag.SMTPUTF8),
            forced_expire=bool(flags & EnvelopeFlag.FORCED_EXPIRE),
        )

    # -- corruption ---------------------------------------------------------------------------

    def _quarantine(self, corrupt: list[tuple[bytes, str]]) -> None:
        if not corrupt:
            return

        def work(txn: lmdb.Transaction) -> None:
            for key, reason in corrupt:
                current = self._locate(txn, key)
                if current is not None and current is not QueueName.CORRUPT:
                    self._quarantine_in(txn, key, current, reason)

        self._write(work)

    def _quarantine_in(
        self, txn: lmdb.Transaction, key: bytes, current: QueueName, reason: str
    ) -> None:
        self._place(txn, key, current, QueueName.CORRUPT)
        log.warning(
            "%s: corrupt queue record (%s): moved to the corrupt queue",
            key.decode("ascii", "replace"),
            reason,
        )


class QueueTransaction:
    """The changes one write transaction can make; MailQueue.transaction hands one out.

    Reads inside it see its own writes. It lives only as long as the transaction: keep no
    reference to it after the work function returns.
    """

    def __init__(self, queue: MailQueue, txn: lmdb.Transaction) -> None:
        self._queue = queue
        self._txn = txn
        self._db = queue._db

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(self, messages: Sequence[Message]) -> list[str]:
        """Queue messages (incoming queue, or hold for those with hold set); return their ids."""
        return self.enqueue_prepared([self._queue.prepare(message) for message in messages])

    def enqueue_prepared(self, batch: Sequence[PreparedMessage]) -> list[str]:
        """Queue prepared messages; return their queue ids.

        Ids are given out inside the transaction from the last stamp in meta, so they are
        unique across every process that writes this environment and sorted by commit time.
        """
        txn, db = self._txn, self._db
        stamp = self._allocate_stamps(len(batch))
        queue_ids = []
        rcpt_cursor = txn.cursor(db=db.rcpt)
        incoming, hold = db.queues[QueueName.INCOMING], db.queues[QueueName.HOLD]
        for offset, prepared in enumerate(batch):
            queue_id = format_queue_id(stamp + offset)
            key = queue_id.encode("ascii")
            if not txn.put(key, prepared.envelope, db=db.msg, overwrite=False):
                raise QueueError(f"queue id {queue_id} already in use (clock or meta broken)")
            content = prepared.content
            if prepared.trace_header:
                trace = prepared.trace_header.replace(QUEUE_ID_PLACEHOLDER, key, 1)
                content = trace + content
            txn.put(key, content, db=db.body)
            rcpt_cursor.putmulti(encode_recipients(key, prepared.recipients))
            txn.put(key, b"", db=hold if prepared.on_hold else incoming)
            queue_ids.append(queue_id)
        return queue_ids

    def _allocate_stamps(self, count: int) -> int:
        """Reserve count consecutive id stamps, never below now or an earlier stamp."""
        stored = self._txn.get(META_LAST_STAMP, db=self._db.meta)
        last = META_U64.unpack(stored)[0] if stored is not None and len(stored) == 8 else 0
        first = max(to_micros(time.time()), last + 1)
        self._txn.put(META_LAST_STAMP, META_U64.pack(first + count - 1), db=self._db.meta)
        return first

    # -- moving between queues ----------------------------------------------------------------

    def move(
        self,
        queue_ids: Iterable[str],
        target: QueueName,
        only_from: Collection[QueueName] | None = None,
        next_try: float | None = None,
    ) -> list[str]:
        """MailQueue.move within this transaction."""
        keys = [_id_key(queue_id) for queue_id in queue_ids]
        due_us = to_micros(time.time() if next_try is None else next_try)
        moved = []
        for key in keys:
            current = self._queue._locate(self._txn, key)
            if current is None or current is target:
                continue
            if only_from is not None and current not in only_from:
                continue
            self._queue._place(self._txn, key, current, target, due_us)
            moved.append(key.decode("ascii"))
        return moved

    def recover_active(self) -> int:
        """Return everything in active to incoming; return how many."""
        cursor = self._txn.cursor(db=self._db.queues[QueueName.ACTIVE])
        keys = [bytes(key) for key in cursor.iternext(keys=True, values=False)]
        for key in keys:
            self._queue._place(self._txn, key, QueueName.ACTIVE, QueueName.INCOMING)
        return len(keys)

    def flush_deferred(self, now: float | None = None) -> int:
        """Make every deferred message due now (postqueue -f); return how many."""
        due_us = to_micros(time.time() if now is None else now)
        cursor = self._txn.cursor(db=self._db.queues[QueueName.DEFERRED])
        keys = [bytes(key) for key in cursor.iternext(keys=True, values=False)]
        for key in keys:
            self._queue._place(self._txn, key, QueueName.DEFERRED, QueueName.DEFERRED, due_us)
        return len(keys)

    # -- results and deletion -----------------------------------------------------------------

    def record_results(self, results: Sequence[RecipientResult]) -> list[str]:
        """Write delivery results; return the ids now fully done.

        A message whose recipients are all final (delivered or bounced) is left where it is
        for qmgr to send any DSN and delete; one with no pending recipient left and some
        deferred moves to the deferred queue, due at its earliest recipient's next try.
        """
        by_message: dict[bytes, list[RecipientResult]] = {}
        for result in results:
            by_message.setdefault(_id_key(result.queue_id), []).append(result)
        txn, queue = self._txn, self._queue
        reason_limit = queue.settings.limits.max_reason_bytes
        finished = []
        for key, updates in by_message.items():
            current = queue._locate(txn, key)
            if current is None:
                log.warning("%s: result for a message no longer queued", key.decode())
                continue
            try:
                for update in updates:
                    self._apply_result(key, update, reason_limit)
                states = decode_recipients(key, _iter_from(txn.cursor(db=self._db.rcpt), key))
            except RecordError as error:
                queue._quarantine_in(txn, key, current, str(error))
                continue
            statuses = [RecipientStatus(fields[1]) for _, fields in states]
            if all(status.final for status in statuses):
                finished.append(key.decode("ascii"))
            elif RecipientStatus.PENDING not in statuses and current is not QueueName.HOLD:
                due = min(f[3] for _, f in states if f[1] == RecipientStatus.DEFERRED)
                queue._place(txn, key, current, QueueName.DEFERRED, due)
        return finished

    def _apply_result(self, key: bytes, update: RecipientResult, reason_limit: int) -> None:
        rcpt_key = pack_rcpt_key(key, update.index)
        stored = self._txn.get(rcpt_key, db=self._db.rcpt)
        if stored is None:
            log.warning("%s: result for unknown recipient #%d", key.decode(), update.index)
            return
        notify, _, attempts, _, address, orig, orcpt, _, _ = decode_recipient(stored)
        record = encode_recipient(
            notify,
            int(update.status),
            min(attempts + 1, 0xFFFFFFFF),
            to_micros(update.next_try),
            address,
            orig,
            orcpt,
            encode_text(update.dsn)[:reason_limit],
            encode_text(update.reason)[:reason_limit],
        )
        self._txn.put(rcpt_key, record, db=self._db.rcpt)

    def set_extra(self, queue_id: str, name: str, value: str) -> bool:
        """Add or replace one envelope extra of a queued message (qmgr's "delay warning sent"
        mark); False if the message is not queued or its envelope does not decode. Both are
        bounded by the extra name and value limits (MessageLimitError past them)."""
        limits = self._queue.settings.limits
        name_bytes = check_length("extra name", encode_text(name), limits.max_extra_name_bytes)
        value_bytes = check_length(
            f"extra {name}", encode_text(value), limits.max_extra_value_bytes
        )
        key = _id_key(queue_id)
        stored = self._txn.get(key, db=self._db.msg)
        if stored is None:
            return False
        try:
            arrival, size, count, flags, body, ret, sender, envid, extras = decode_envelope(stored)
            kept = [(n, v) for n, v in extras if n != name_bytes]
            record = encode_envelope(
                arrival,
                size,
                count,
                flags,
                body,
                ret,
                sender,
                envid,
                [*kept, (name_bytes, value_bytes)],
            )
        except RecordError:
            return False
        self._txn.put(key, record, db=self._db.msg)
        return True

    def delete(self, queue_ids: Iterable[str]) -> list[str]:
        """Delete messages (envelope, content, recipients, indexes); return the ids deleted."""
        return self.delete_keys([_id_key(queue_id) for queue_id in queue_ids])

    def delete_keys(self, keys: Iterable[bytes]) -> list[str]:
        """delete() for keys already checked by _id_key."""
        txn, db = self._txn, self._db
        deleted = []
        for key in keys:
            current = self._queue._locate(txn, key)
            if current is None:
                continue
            self._queue._place(txn, key, current, QueueName.HOLD)
            txn.delete(key, db=db.queues[QueueName.HOLD])
            txn.delete(key, db=db.msg)
            txn.delete(key, db=db.body)
            cursor = txn.cursor(db=db.rcpt)
            if cursor.set_range(key):
                while bytes(cursor.key()[: len(key)]) == key and cursor.delete():
                    pass
            deleted.append(key.decode("ascii"))
        return deleted

    # -- reading ------------------------------------------------------------------------------

    def get(self, queue_id: str) -> QueuedMessage | None:
        """One message's envelope and recipients; None if it is not queued or was corrupt
        (a corrupt one is moved to the corrupt queue in this transaction)."""
        key = _id_key(queue_id)
        current = self._queue._locate(self._txn, key)
        if current is None:
            return None
        corrupt: list[tuple[bytes, str]] = []
        message = self._queue._read(self._txn, key, current, corrupt)
        for bad_key, reason in corrupt:
            self._queue._quarantine_in(self._txn, bad_key, current, reason)
        return message

    def content(self, queue_id: str) -> bytes:
        """The message content; UnknownQueueIdError if there is none."""
        content = self._txn.get(_id_key(queue_id), db=self._db.body)
        if content is None:
            raise UnknownQueueIdError(f"{queue_id}: no such message in the queue")
        return bytes(content)


def _due_keys(cursor: lmdb.Cursor, due_before_us: int) -> Iterator[bytes]:
    """The message keys of the next-try index due at or before due_before_us, earliest first."""
    for time_key in cursor.iternext(keys=True, values=False):
        if int.from_bytes(time_key[:8], "big") > due_before_us:
            return
        yield bytes(time_key[8:])


def _iter_from(
    cursor: lmdb.Cursor, key: bytes
) -> Iterator[tuple[bytes | memoryview, bytes | memoryview]]:
    """The cursor's (key, value) pairs from the first key >= key on (nothing if none)."""
    if not cursor.set_range(key):
        return iter(())
    return cursor.iternext(keys=True, values=True)


def _recipient_state(index: int, fields: RecipientFields) -> RecipientState:
    notify, status, attempts, next_try, address, orig, orcpt, dsn, reason = fields
    return RecipientState(
        index=index,
        recipient=Recipient(
            address=decode_text(address),
            orig_address=decode_text(orig),
            orcpt=decode_text(orcpt),
            notify=Notify(notify),
        ),
        status=RecipientStatus(status),
        attempts=attempts,
        next_try=from_micros(next_try),
        dsn=decode_text(dsn),
        reason=decode_text(reason),
    )
