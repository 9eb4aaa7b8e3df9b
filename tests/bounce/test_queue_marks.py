"""The envelope mark that remembers a sent delay warning: set in a transaction, kept on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.queue import MailQueue, Message, MessageLimitError, QueueSettings, Recipient


def test_set_extra_adds_or_replaces_one_extra_and_survives_reopening(tmp_path: Path) -> None:
    settings = QueueSettings(tmp_path / "q")
    with MailQueue(settings) as queue:
        message = Message("a@x.test", (Recipient("b@y.test"),), b"S: 1\r\n\r\n", extras={"k": "v"})
        [queue_id] = queue.enqueue([message])
        assert queue.transaction(lambda txn: txn.set_extra(queue_id, "delay_warned", "1"))
        assert queue.transaction(lambda txn: txn.set_extra(queue_id, "delay_warned", "2"))
        assert not queue.transaction(lambda txn: txn.set_extra("0000000000", "x", "y"))
        with pytest.raises(MessageLimitError):
            queue.transaction(lambda txn: txn.set_extra(queue_id, "n" * 100, "y"))
    with MailQueue(settings) as queue:
        assert queue.get(queue_id).extras == {"k": "v", "delay_warned": "2"}
