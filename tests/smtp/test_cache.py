"""The session cache on its own, with real sessions to a scripted server: sessions are handed
out under their own key only, newest first, and past *_connection_cache_limit the oldest idle
session leaves (QUIT) whatever its key."""

from __future__ import annotations

from support.smtpserver import Script, ScriptedServer

from mta.smtp.cache import SessionCache
from mta.smtp.settings import ReuseLimits

from .helpers import run, session_to


def test_sessions_are_taken_by_key_and_the_oldest_leaves_past_the_limit() -> None:
    async def main(port: int) -> None:
        cache = SessionCache(ReuseLimits(idle=0, sessions=2))
        first, second, third = [await session_to(port) for _ in range(3)]
        cache.give(("smtp", "a.test"), first)
        cache.give(("smtp", "b.test"), second)
        cache.give(("smtp", "a.test"), third)
        assert len(cache) == 2 and not first.alive  # the oldest left, the limit kept
        assert await cache.take(("relay", "a.test")) is None  # another transport's key
        assert await cache.take(("smtp", "a.test")) is third
        assert await cache.take(("smtp", "a.test")) is None
        assert await cache.take(("smtp", "b.test")) is second
        assert len(cache) == 0 and cache.reused == 2
        cache.give(("smtp", "b.test"), second)
        cache.close()
        assert len(cache) == 0 and not second.alive
        third.quit()

    with ScriptedServer(Script()) as server:
        run(main(server.port))
