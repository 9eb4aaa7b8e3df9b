"""What qmgr's active queue may take in, and in what order: plain data, no I/O.

Parameters (read by mta.qmgr.settings):
  qmgr_message_active_limit (20000)     messages in the active queue at once
  qmgr_message_recipient_limit (20000)  recipients of those messages held in memory at once
  qmgr_intake_batch_limit (500)         messages read by one intake

Mail beyond a limit is simply not read: it stays in incoming or deferred, where the next
intake finds it once messages have left (nothing is lost). A message with more recipients
than qmgr_message_recipient_limit still goes in when it would be alone in memory, so no
message waits forever. After an intake that could not admit all it read, the next one waits
until a message leaves, so a full queue is not read again and again in vain.

Fairness between new and deferred mail, as Postfix's queue manager alternates between the
incoming and deferred queues when both have work: an intake that also looks at due deferred
mail gives each queue half of its room (the odd message in turn), and either may use what
the other leaves. Messages are admitted alternately from both, so even a backlog of 10,000
due deferred messages leaves new mail half of every intake, and new mail never holds back
deferred mail entirely either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class IntakePlan:
    limit: int
    """Messages the intake may read; 0: no intake."""
    due_first: int
    """How many due deferred messages it reads before incoming mail has its turn."""
    deferred_first: bool
    """Whether the admission order starts with deferred mail."""


class Admission:
    """Counts what the active queue holds against its limits; plans and admits intakes."""

    def __init__(self, message_limit: int, recipient_limit: int, batch: int) -> None:
        self.message_limit = message_limit
        self.recipient_limit = recipient_limit
        self.batch = batch
        self.recipients = 0
        """Recipients of the messages admitted and not yet left."""
        self.blocked = False
        """The last intake read more than fit: wait for a message to leave."""
        self._deferred_turn = False

    def plan(self, messages: int, leaving: int, deferred: bool) -> IntakePlan:
        """The next intake, with `messages` in the active queue of which `leaving` are done
        and about to leave; `deferred` when it also looks at due deferred mail."""
        room = min(self.message_limit - (messages - leaving), self.batch)
        if self.blocked or (self.recipients >= self.recipient_limit and messages > 0):
            room = 0
        room = max(room, 0)
        if not deferred or room == 0:
            return IntakePlan(room, 0, False)
        deferred_first = self._deferred_turn
        self._deferred_turn = not deferred_first
        due_first = room // 2 + (room % 2 if deferred_first else 0)
        return IntakePlan(room, due_first, deferred_first)

    def admit(self, recipient_counts: Sequence[int]) -> int:
        """How many of the messages read (in admission order, with these recipient counts)
        go in; the rest stay where they are for a later intake."""
        admitted = 0
        for count in recipient_counts:
            alone = self.recipients == 0
            if not alone and self.recipients + count > self.recipient_limit:
                self.blocked = True
                break
            self.recipients += count
            admitted += 1
        return admitted

    def leave(self, recipient_count: int) -> None:
        """A message left the active queue."""
        self.recipients -= recipient_count
        self.blocked = False


def interleave(due: Sequence[M], incoming: Sequence[M], deferred_first: bool) -> list[M]:
    """Deferred and new messages taken in turn, starting as the plan says."""
    first, second = (due, incoming) if deferred_first else (incoming, due)
    ordered: list[M] = []
    for index in range(max(len(first), len(second))):
        if index < len(first):
            ordered.append(first[index])
        if index < len(second):
            ordered.append(second[index])
    return ordered
