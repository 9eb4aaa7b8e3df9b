"""What every lookup table is: the LookupTable interface, its errors, its limits, its cache.

    table.lookup("user@example.com") -> "value" | None

A table answers one key with one string or None (not found), or raises TableUnavailable: a
temporary failure (the file cannot be opened, a server does not answer, the file is malformed).
Callers defer mail with a 4xx reply and a log line naming the table, as Postfix does since 2.9
("gradual degradation"); the rest of the MTA keeps working. TableFormatError, a kind of
TableUnavailable, says the table's file or configuration is wrong and names the file and line.

Security: table files and table configuration come from the administrator and are trusted as
main.cf is; lookup keys come from SMTP clients and are not. Every input has a named bound
below; a key past MAX_KEY_BYTES (or an empty one) is never found in an indexed table, and a
reply past a bound makes the table unavailable, never a bigger buffer.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict

MAX_TABLE_FILE_BYTES = 256 * 1024 * 1024  # a postmap source file, or a table read into memory
MAX_LINE_BYTES = 64 * 1024  # one logical line, continuation lines included
MAX_KEY_BYTES = 511  # LMDB's own key bound; an address is at most 254 octets (RFC 5321)
MAX_VALUE_BYTES = 64 * 1024
MAX_ENTRIES = 10_000_000  # entries of a postmap source, rules of a cidr/regexp table
MAX_IF_NESTING = 100  # if/endif blocks inside one another in a cidr or regexp table
MAX_MATCH_INPUT_BYTES = 1024 * 1024  # what a regexp/cidr table matches (a header line, say)
MAX_REPLY_BYTES = 1024 * 1024  # one answer from a network table, all rows together
MAX_REPLY_LINE_BYTES = 1024  # one protocol line from memcached or Redis
DEFAULT_TIMEOUT_SECONDS = 2  # connect, and each request, of a network table
DEFAULT_CACHE_SECONDS = 10  # how long a network table's answer is reused (0: not at all)
DEFAULT_CACHE_ENTRIES = 1000


class TableUnavailable(Exception):
    """A table cannot answer now: the caller defers (4xx) and logs this one-line message."""


class TableFormatError(TableUnavailable):
    """A table's file or configuration is malformed; the message names the file and line."""


class UnknownTableType(TableFormatError):
    """`type:name` names a type that mta does not have."""


class LookupTable(ABC):
    """One opened table, named by its `type:name` spec; one process, one thread uses it."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @abstractmethod
    def lookup(self, key: str) -> str | None:
        """The value for key, None when the table has none; raises TableUnavailable."""

    def close(self) -> None:  # noqa: B027 - in-memory tables have nothing to release
        """Release files and connections; the default table holds none."""

    def unavailable(self, reason: str) -> TableUnavailable:
        return TableUnavailable(f"table {self.spec} is unavailable: {reason}")


def fold_key(key: str) -> str:
    """Keys of indexed tables are case-insensitive: Postfix folds them to lower case."""
    return key.lower()


def first_line(error: BaseException) -> str:
    """A one-line reason from an exception whose text may span lines (or be empty)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def key_fits(key: str) -> bool:
    """An indexed table holds no key longer than MAX_KEY_BYTES, so a longer one is not there."""
    return (
        0 < len(key) <= MAX_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES
    )


class ResultCache:
    """Answers of a network table, reused for `seconds`, at most `entries` of them (LRU).

    Postfix caches nothing for SQL tables; a short cache here trades seconds of staleness for
    fewer round trips on the hot path. Not-found answers are cached too; failures never are.
    """

    def __init__(self, seconds: float, entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.seconds = seconds
        self.entries = entries
        self._answers: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, str | None]:
        """(True, answer) when a fresh answer is cached, else (False, None)."""
        cached = self._answers.get(key)
        if cached is None:
            return False, None
        expires, answer = cached
        if time.monotonic() >= expires:
            del self._answers[key]
            return False, None
        self._answers.move_to_end(key)
        return True, answer

    def put(self, key: str, answer: str | None) -> None:
        if self.seconds <= 0 or self.entries <= 0:
            return
        self._answers[key] = (time.monotonic() + self.seconds, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self.entries:
            self._answers.popitem(last=False)
