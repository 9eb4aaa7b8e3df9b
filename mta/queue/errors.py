"""Errors of the mail queue, each with the SMTP reply smtpd gives when it meets one."""

from __future__ import annotations


class QueueError(Exception):
    """The queue could not do what was asked; nothing already queued was harmed."""

    reply = "451 4.3.0 Error: queue file write error"


class QueueFullError(QueueError):
    """The queue reached queue_max_size or the disk is full (ENOSPC)."""

    reply = "452 4.3.1 Insufficient system storage"


class MessageLimitError(QueueError):
    """A message field is over its named limit (smtpd should have refused it earlier)."""

    reply = "552 5.3.4 Message too big for system"


class UnknownQueueIdError(QueueError):
    """No message has this queue id (or it is not a queue id at all)."""


class QueueAccessError(QueueError):
    """The queue directory or its files cannot be opened for lack of permission."""
