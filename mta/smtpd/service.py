"""What one smtpd worker's sessions share: settings, policy, address rewriting, the committer,
the qmgr trigger.

The service makes the sessions (it is the protocol factory given to the event loop's servers),
keeps them within `smtpd_worker_session_limit`, wakes qmgr at most once per loop iteration
however many messages a group commit released, and on stop lets sessions finish their
transaction for up to `smtpd_shutdown_timeout` before cutting the rest.

Retirement (the master's max_use): after `max_use` connections `used_up` is set, so the
worker stops accepting, and `drained` once the sessions it has ended; connections still in the
listening socket's backlog wait there for the worker the master starts next.
"""

from __future__ import annotations

import asyncio
import logging

from mta.queue import Committer
from mta.rewrite import AddressRewriter
from mta.smtpd.policy import RelayPolicy
from mta.smtpd.session import SmtpSession
from mta.smtpd.settings import SmtpdSettings
from mta.util.trigger import SCAN_INCOMING, TriggerSender

log = logging.getLogger("mta.smtpd")

STOP_POLL_INTERVAL = 0.05


def ehlo_lines(settings: SmtpdSettings) -> tuple[str, ...]:
    """The EHLO reply: our name, then the extensions in Postfix's order."""
    size_limit = settings.limits.message_size_limit
    return (
        settings.myhostname,
        "PIPELINING",
        f"SIZE {size_limit}",
        *(() if settings.disable_vrfy else ("VRFY",)),
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    )


class SmtpdService:
    def __init__(
        self,
        settings: SmtpdSettings,
        policy: RelayPolicy,
        committer: Committer,
        trigger: TriggerSender | None = None,
        *,
        rewriter: AddressRewriter,
        max_use: int = 0,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.rewriter = rewriter
        self.committer = committer
        self.ehlo_lines = ehlo_lines(settings)
        self.sessions: set[SmtpSession] = set()
        self._trigger = trigger
        self._wake_pending = False
        self._loop = asyncio.get_running_loop()
        self._max_use = max_use
        self._connections = 0
        self._idle_since = self._loop.time()
        self.used_up = asyncio.Event()
        """max_use connections taken: accept no more."""
        self.drained = asyncio.Event()
        """used_up, and every session has ended."""

    def protocol_factory(self) -> SmtpSession:
        self._connections += 1
        if self._connections == self._max_use:
            self.used_up.set()
        return SmtpSession(self)

    def idle_for(self) -> float:
        """Seconds since the last session ended; 0 while any is open."""
        return 0.0 if self.sessions else self._loop.time() - self._idle_since

    def admit(self, session: SmtpSession) -> bool:
        """Register a new session; False when the worker already holds its limit."""
        if len(self.sessions) >= self.settings.session_limit:
            return False
        self.sessions.add(session)
        return True

    def forget(self, session: SmtpSession) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle_since = self._loop.time()
            if self.used_up.is_set():
                self.drained.set()

    def message_queued(self) -> None:
        """A message is durable: wake qmgr once, after this loop iteration's commits."""
        if self._trigger is not None and not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._wake_qmgr)

    def _wake_qmgr(self) -> None:
        self._wake_pending = False
        if self._trigger is None:
            return
        try:
            self._trigger.send(SCAN_INCOMING)
        except OSError as error:
            # Not one of the expected "nobody listens" errors (e.g. a path longer than
            # AF_UNIX allows): say so once; qmgr's timer scan still finds the mail.
            log.warning("warning: cannot trigger qmgr at %r: %s", self._trigger.path, error)
            self._trigger = None

    async def stop(self) -> None:
        """End idle sessions now, the others after their transaction, the rest at the timeout."""
        for session in list(self.sessions):
            session.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        while self.sessions and loop.time() < deadline:
            await asyncio.sleep(STOP_POLL_INTERVAL)
        for session in list(self.sessions):
            session.abort()
        # Let the transports report connection_lost before the loop goes away.
        await asyncio.sleep(0)
