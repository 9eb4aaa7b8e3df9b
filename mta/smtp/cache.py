"""Sessions kept open for the next message to the same destination (Postfix's scache).

    cache = SessionCache(ReuseLimits(count=0, time=300, idle=2, sessions=1000))
    session = await cache.take(("smtp", "example.com"))   # None: open a new one
    ...deliver...
    cache.give(("smtp", "example.com"), session)          # keep it, or QUIT it

A session that finished a transaction goes back under its (transport, next hop) key. It is
taken again only if it is younger than smtp_connection_reuse_time_limit, was used fewer than
smtp_connection_reuse_count_limit times (0: no count limit), and answers RSET with 250 (as
Postfix checks a cached session with RSET, smtp_rset_timeout); a session that fails that check
is closed and the next one (or a new connection) is used. Unused, a session waits at most
smtp_connection_cache_time_limit seconds, then gets QUIT. At most `sessions` idle sessions are
kept in all, the oldest leaving first. The TLS state is part of the session: a cached session
is reused only under its own key, whose policy decided its TLS.

Parameters: *_connection_reuse_count_limit, *_connection_reuse_time_limit,
*_connection_cache_time_limit, *_connection_cache_limit (through ReuseLimits).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from mta.smtp.session import Session
from mta.smtp.settings import ReuseLimits

Key = tuple[str, str]


class SessionCache:
    def __init__(self, limits: ReuseLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        # Oldest first, for eviction; _by_key finds a key's newest session without a scan of
        # every idle session on each message.
        self._idle: OrderedDict[int, tuple[Key, Session, asyncio.TimerHandle | None]] = (
            OrderedDict()
        )
        self._by_key: dict[Key, dict[int, None]] = {}
        self.reused = 0  # sessions handed out again (for tests and statistics)

    def __len__(self) -> int:
        return len(self._idle)

    def reusable(self, session: Session) -> bool:
        limits = self.limits
        if not session.alive or limits.sessions <= 0:
            return False
        # Postfix: "the number of times that a session may be reused": count + 1 transactions.
        if limits.count and session.transactions > limits.count:
            return False
        return self.clock() - session.created < limits.time

    def give(self, key: Key, session: Session) -> None:
        """Keep a session that finished its transaction, or close it when it may not be reused."""
        if not self.reusable(session):
            session.close()
            return
        handle: asyncio.TimerHandle | None = None
        if self.limits.idle > 0:
            handle = asyncio.get_running_loop().call_later(
                self.limits.idle, self._expire, id(session)
            )
        self._idle[id(session)] = (key, session, handle)
        self._by_key.setdefault(key, {})[id(session)] = None
        while len(self._idle) > self.limits.sessions:
            self._remove(next(iter(self._idle))).close()

    def _remove(self, session_id: int) -> Session:
        """Take an idle session out of the cache and stop its idle timer."""
        key, session, handle = self._idle.pop(session_id)
        ids = self._by_key[key]
        del ids[session_id]
        if not ids:
            del self._by_key[key]
        if handle is not None:
            handle.cancel()
        return session

    def _expire(self, session_id: int) -> None:
        if session_id in self._idle:
            self._remove(session_id).close()

    def _pop(self, key: Key) -> Session | None:
        ids = self._by_key.get(key)
        return None if ids is None else self._remove(next(reversed(ids)))

    async def take(self, key: Key) -> Session | None:
        """A cached session for key that passed its limits and RSET, or None."""
        while (session := self._pop(key)) is not None:
            if self.reusable(session) and await session.reset():
                self.reused += 1
                return session
            session.close()
        return None

    def close(self) -> None:
        """QUIT every idle session (the process is stopping)."""
        while self._idle:
            self._remove(next(iter(self._idle))).close()
