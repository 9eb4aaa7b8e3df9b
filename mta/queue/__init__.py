"""The mail queue: one durable LMDB environment holding every message from 250 to delivery.

Public API: MailQueue (the store), QueueTransaction (several changes in one commit),
QueueSettings, Committer (group commit for smtpd), the
message model (Message, Recipient, QueuedMessage, RecipientState, RecipientResult and their
enums), QueueName, and the errors (QueueError, QueueFullError, ...). See store.py and
schema.py for the layout and ARCHITECTURE.md "The queue (LMDB)" for the design.
"""

from mta.queue.committer import Committer
from mta.queue.errors import (
    MessageLimitError,
    QueueAccessError,
    QueueError,
    QueueFullError,
    UnknownQueueIdError,
)
from mta.queue.message import (
    FILTER_EXTRA,
    BodyType,
    DsnRet,
    Message,
    MessageLimits,
    Notify,
    QueuedMessage,
    Recipient,
    RecipientResult,
    RecipientState,
    RecipientStatus,
    split_filter,
)
from mta.queue.schema import QueueName, SyncMode
from mta.queue.store import (
    QUEUE_ID_PLACEHOLDER,
    MailQueue,
    PreparedMessage,
    QueueSettings,
    QueueTransaction,
)

__all__ = [
    "FILTER_EXTRA",
    "QUEUE_ID_PLACEHOLDER",
    "BodyType",
    "Committer",
    "DsnRet",
    "MailQueue",
    "Message",
    "MessageLimitError",
    "MessageLimits",
    "Notify",
    "PreparedMessage",
    "QueueAccessError",
    "QueueError",
    "QueueFullError",
    "QueueName",
    "QueueSettings",
    "QueueTransaction",
    "QueuedMessage",
    "Recipient",
    "RecipientResult",
    "RecipientState",
    "RecipientStatus",
    "SyncMode",
    "UnknownQueueIdError",
    "split_filter",
]
