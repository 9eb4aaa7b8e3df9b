"""qmgr's main.cf parameters, read once and checked (a wrong value is a ConfigError naming it).

Parameters (defaults in mta.config.maincf.BUILTIN_DEFAULTS, as Postfix's where it has one):
  queue_run_delay (300s)                      how often deferred mail is looked at
  qmgr_message_active_limit (20000)           messages in the active queue at once
  qmgr_intake_batch_limit (500)               messages taken per intake (one read snapshot)
  qmgr_commit_delay (10, milliseconds)        how long queue changes (mail taken, results,
                                              removals) gather before qmgr commits them in
                                              one write transaction
  qmgr_commit_batch_limit (500)               or how many changes: whichever comes first
  minimal_backoff_time (300s), maximal_backoff_time (4000s)
                                              retry interval of deferred recipients: doubles
                                              per attempt from the minimal up to the maximal
  maximal_queue_lifetime (5d), bounce_queue_lifetime (5d)
                                              age after which deferred mail (bounces: the
                                              second) is returned to the sender
  transport_retry_time (60s)                  how long a transport whose agent cannot be
                                              reached, or a dead destination, is suspended
  delivery_agent_crash_retry_time (10s)       retry of recipients whose agent died mid-request
                                              (soon: the crash is ours, not the recipient's)
  default_destination_concurrency_limit (20), <transport>_destination_concurrency_limit
  initial_destination_concurrency (5)         slow start begins here
  default_destination_recipient_limit (50), <transport>_destination_recipient_limit
                                              recipients per delivery request (at most 1000)
  default_process_limit (100)                 requests in flight per transport
  default_destination_concurrency_failed_cohort_limit (1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mta.config.maincf import ConfigError, Settings
from mta.config.values import duration, number
from mta.proto.delivery import MAX_REQUEST_RECIPIENTS
from mta.qmgr.resolve import Resolver
from mta.qmgr.scheduler import TransportPolicy


@dataclass(frozen=True, slots=True)
class QmgrSettings:
    myhostname: str
    queue_directory: Path
    data_directory: Path
    queue_run_delay: float
    active_limit: int
    intake_batch: int
    commit_delay: float
    """Seconds (qmgr_commit_delay is in milliseconds)."""
    commit_batch: int
    minimal_backoff: float
    maximal_backoff: float
    maximal_queue_lifetime: float
    bounce_queue_lifetime: float
    transport_retry: float
    agent_crash_retry: float
    resolver: Resolver
    source: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> QmgrSettings:
        myhostname = settings.get("myhostname").strip()
        if not myhostname or not myhostname.isascii() or any(c in myhostname for c in " \t/"):
            raise ConfigError(f"myhostname = {myhostname!r}: expected a host name")
        minimal = duration(settings, "minimal_backoff_time")
        maximal = duration(settings, "maximal_backoff_time")
        if maximal < minimal:
            raise ConfigError("maximal_backoff_time is shorter than minimal_backoff_time")
        return cls(
            myhostname=myhostname,
            queue_directory=settings.queue_directory,
            data_directory=settings.data_directory,
            queue_run_delay=duration(settings, "queue_run_delay"),
            active_limit=number(settings, "qmgr_message_active_limit", minimum=1),
            intake_batch=number(settings, "qmgr_intake_batch_limit", minimum=1),
            commit_delay=number(settings, "qmgr_commit_delay") / 1000,
            commit_batch=number(settings, "qmgr_commit_batch_limit", minimum=1),
            minimal_backoff=minimal,
            maximal_backoff=maximal,
            maximal_queue_lifetime=duration(settings, "maximal_queue_lifetime", "d"),
            bounce_queue_lifetime=duration(settings, "bounce_queue_lifetime", "d"),
            transport_retry=duration(settings, "transport_retry_time"),
            agent_crash_retry=duration(settings, "delivery_agent_crash_retry_time"),
            resolver=Resolver.from_settings(settings),
            source=settings,
        )

    def _per_transport(self, transport: str, suffix: str, minimum: int) -> int:
        name = f"{transport}_{suffix}"
        if self.source.get(name).strip():
            return number(self.source, name, minimum)
        return number(self.source, f"default_{suffix}", minimum)

    def policy(self, transport: str) -> TransportPolicy:
        return TransportPolicy(
            destination_limit=self._per_transport(
                transport, "destination_concurrency_limit", minimum=1
            ),
            initial_concurrency=number(self.source, "initial_destination_concurrency", minimum=1),
            transport_limit=number(self.source, "default_process_limit", minimum=1),
            failed_cohort_limit=number(
                self.source, "default_destination_concurrency_failed_cohort_limit", minimum=1
            ),
            throttle_time=self.transport_retry,
        )

    def recipient_limit(self, transport: str) -> int:
        limit = self._per_transport(transport, "destination_recipient_limit", minimum=1)
        return min(limit, MAX_REQUEST_RECIPIENTS)

    def backoff(self, attempts: int) -> float:
        """Seconds until the next try of a recipient that has failed `attempts` times before."""
        return min(self.maximal_backoff, self.minimal_backoff * float(2 ** min(attempts, 32)))
