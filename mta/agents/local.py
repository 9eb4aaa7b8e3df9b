"""local: Maildir delivery for the local domains (a subset of Postfix's local(8)).

Delivers each recipient's copy to `$data_directory/mail/<localpart>/Maildir/new`, the Maildir
way: write the file under tmp/ with a unique name (seconds.MmicrosPpidQcounter.host), fsync
it, rename it into new/, fsync new/. Only then is the recipient reported sent, so a crash
never loses mail (at worst a file stays in tmp/ and the mail is delivered again). Like
Postfix, it puts `Return-Path: <sender>` and `Delivered-To: <recipient>` (and
`X-Original-To:` when the address was rewritten) at the top, and stores lines with LF ends.

    QUEUEID: to=<joe@example.com>, relay=local, delay=0.02, delays=0/0/0/0.01, dsn=2.0.0,
             status=sent (delivered to maildir)

Local parts are lower-cased; one that is empty, starts with ".", or holds "/" or a control
character is refused: bounced 5.1.1 "unknown user". A full disk, a quota or an I/O error
defers (4.3.0; a full disk 4.3.1, "mail system full") and leaves nothing in new/.
recipient_delimiter is not supported yet.

Security: the local part names a directory, hence the refusals above; files are created 0600
in directories made 0700. Content is read from the queue in a read-only transaction.
Parameters: data_directory; myhostname (in file names); queue parameters (to read content).
"""

from __future__ import annotations

import errno
import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mta.agents.server import Deliver, agent_main
from mta.config.maincf import Settings
from mta.proto.delivery import DeliveryRequest, Outcome, RecipientOutcome, RequestRecipient
from mta.queue import MailQueue, QueueError, QueueSettings, UnknownQueueIdError

DELIVERY_THREADS = 4
"""Deliveries written at once: fsync blocks, and several files can be synced together."""
TEMPORARY_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})
MAILDIR_SUBDIRECTORIES = ("tmp", "new", "cur")


def local_part(address: str) -> str | None:
    """The mailbox name for address, or None if it cannot name a directory safely."""
    name = address.rpartition("@")[0] if "@" in address else address
    name = name.lower()
    if (
        not name
        or name.startswith(".")
        or "/" in name
        or "\0" in name
        or any(ord(char) < 32 or ord(char) == 127 for char in name)
    ):
        return None
    return name


class MaildirDelivery:
    def __init__(self, mail_root: Path, hostname: str, queue: MailQueue) -> None:
        self.mail_root = mail_root
        # Maildir reserves "/" and ":" in file names.
        self.hostname = hostname.replace("/", "\\057").replace(":", "\\072")
        self.queue = queue
        self._counter = itertools.count(1)

    def deliver(self, request: DeliveryRequest) -> list[RecipientOutcome]:
        try:
            content = self.queue.content(request.queue_id)
        except UnknownQueueIdError:
            return _all(request, Outcome.DEFERRED, "4.3.0", "message no longer in the queue")
        except QueueError as error:
            return _all(request, Outcome.DEFERRED, "4.3.0", f"cannot read the queue: {error}")
        body = content.replace(b"\r\n", b"\n")
        return [self._deliver_one(request, recipient, body) for recipient in request.recipients]

    def _deliver_one(
        self, request: DeliveryRequest, recipient: RequestRecipient, body: bytes
    ) -> RecipientOutcome:
        name = local_part(recipient.address)
        if name is None:
            return RecipientOutcome(
                recipient.index, Outcome.BOUNCED, "5.1.1", "local", "unknown user"
            )
        headers = [f"Return-Path: <{request.sender}>\n"]
        if recipient.orig_address and recipient.orig_address != recipient.address:
            headers.append(f"X-Original-To: {recipient.orig_address}\n")
        headers.append(f"Delivered-To: {recipient.address}\n")
        data = "".join(headers).encode("utf-8", "surrogateescape") + body
        try:
            self._write(self.mail_root / name / "Maildir", data)
        except OSError as error:
            if error.errno in TEMPORARY_ERRNOS:
                text = f"cannot write maildir: {error.strerror}"
            else:
                text = f"cannot deliver to maildir: {error.strerror or error}"
            # 4.3.1 "mail system full" (RFC 3463) tells qmgr of a resource problem here.
            dsn = "4.3.1" if error.errno == errno.ENOSPC else "4.3.0"
            return RecipientOutcome(recipient.index, Outcome.DEFERRED, dsn, "local", text)
        return RecipientOutcome(
            recipient.index, Outcome.SENT, "2.0.0", "local", "delivered to maildir"
        )

    def _write(self, maildir: Path, data: bytes) -> None:
        for sub in MAILDIR_SUBDIRECTORIES:
            (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        now = time.time()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        unique = f"{seconds}.M{micros}P{os.getpid()}Q{next(self._counter)}.{self.hostname}"
        temporary = maildir / "tmp" / unique
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.rename(temporary, maildir / "new" / unique)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(maildir / "new", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _all(request: DeliveryRequest, outcome: Outcome, dsn: str, text: str) -> list[RecipientOutcome]:
    return [RecipientOutcome(r.index, outcome, dsn, "local", text) for r in request.recipients]


def make_deliver(settings: Settings, _service: str) -> tuple[Deliver, Callable[[], None]]:
    queue = MailQueue(
        QueueSettings.from_parameters(settings.queue_directory, settings.get), create=False
    )
    delivery = MaildirDelivery(
        settings.data_directory / "mail", settings.get("myhostname").strip(), queue
    )
    return delivery.deliver, queue.close


if __name__ == "__main__":
    sys.exit(agent_main("local", make_deliver, None, threads=DELIVERY_THREADS))
