"""qmgr's main.cf parameters, read once and checked (a wrong value is a ConfigError naming it).

Parameters (defaults in mta.config.maincf.BUILTIN_DEFAULTS, as Postfix's where it has one):
  queue_run_delay (300s)                      how often deferred mail is looked at
  qmgr_message_active_limit (20000)           messages in the active queue at once
  qmgr_message_recipient_limit (20000)        recipients of active messages in memory
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
                                              reached is suspended (a dead destination:
                                              minimal_backoff_time, as in Postfix)
  delivery_agent_crash_retry_time (10s)       retry of recipients whose agent died mid-request
                                              (soon: the crash is ours, not the recipient's)
  default_destination_concurrency_limit (20), <transport>_destination_concurrency_limit
  initial_destination_concurrency (5), <transport>_initial_destination_concurrency
                                              slow start begins here
  default_destination_recipient_limit (50), <transport>_destination_recipient_limit
                                              recipients per delivery request (at most 1000;
                                              1: the destination is the recipient)
  default_process_limit (100)                 requests in flight per transport, unless the
                                              transport's master.cf service sets maxproc
                                              (as Postfix's qmgr takes its transport
                                              concurrency from the service's process limit;
                                              0: no limit)
  default_destination_concurrency_failed_cohort_limit (1),
  <transport>_destination_concurrency_failed_cohort_limit
                                              failed pseudo-cohorts that make a destination
                                              dead (0: never)
  default_destination_rate_delay (0s), <transport>_destination_rate_delay
  default_transport_rate_delay (0s), <transport>_transport_rate_delay
                                              pause between deliveries to one destination /
                                              over one transport, one at a time (0s: none)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mta.config.maincf import ConfigError, Settings
from mta.config.mastercf import Service
from mta.config.table import PER_TRANSPORT_DEFAULTS
from mta.config.values import duration, number
from mta.proto.delivery import MAX_REQUEST_RECIPIENTS
from mta.qmgr.resolve import Resolver
from mta.qmgr.scheduler import TransportPolicy


@dataclass(frozen=True, slots=True)
class QmgrSettings:
    queue_directory: Path
    data_directory: Path
    queue_run_delay: float
    active_limit: int
    recipient_active_limit: int
    """qmgr_message_recipient_limit."""
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
    process_limits: Mapping[str, int] = field(default_factory=dict)
    """maxproc of each master.cf unix service that sets one, by service (transport) name."""

    @classmethod
    def from_settings(cls, settings: Settings, services: Iterable[Service] = ()) -> QmgrSettings:
        minimal = duration(settings, "minimal_backoff_time")
        maximal = duration(settings, "maximal_backoff_time")
        if maximal < minimal:
            raise ConfigError("maximal_backoff_time is shorter than minimal_backoff_time")
        return cls(
            queue_directory=settings.queue_directory,
            data_directory=settings.data_directory,
            queue_run_delay=duration(settings, "queue_run_delay"),
            active_limit=number(settings, "qmgr_message_active_limit", minimum=1),
            recipient_active_limit=number(settings, "qmgr_message_recipient_limit", minimum=1),
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
            process_limits={
                service.name: service.maxproc
                for service in services
                if service.type == "unix" and service.maxproc is not None
            },
        )

    def _per_transport(self, transport: str, suffix: str) -> str:
        """The name of `<transport>_<suffix>` if main.cf sets it, else of the parameter it
        falls back to (default_destination_rate_delay for smtp_destination_rate_delay)."""
        name = f"{transport}_{suffix}"
        if self.source.get(name).strip():
            return name
        return PER_TRANSPORT_DEFAULTS[suffix]

    def _transport_limit(self, transport: str) -> int:
        limit = self.process_limits.get(transport)
        if limit is None:
            return number(self.source, "default_process_limit", minimum=1)
        return limit or sys.maxsize

    def policy(self, transport: str) -> TransportPolicy:
        """The scheduler's limits for one transport; ConfigError names a bad parameter."""

        def count(suffix: str, minimum: int) -> int:
            return number(self.source, self._per_transport(transport, suffix), minimum)

        def delay(suffix: str) -> float:
            return duration(self.source, self._per_transport(transport, suffix), minimum=0)

        return TransportPolicy(
            destination_limit=count("destination_concurrency_limit", 1),
            initial_concurrency=count("initial_destination_concurrency", 1),
            transport_limit=self._transport_limit(transport),
            failed_cohort_limit=count("destination_concurrency_failed_cohort_limit", 0),
            dead_time=self.minimal_backoff,
            destination_rate_delay=delay("destination_rate_delay"),
            transport_rate_delay=delay("transport_rate_delay"),
        )

    def recipient_limit(self, transport: str) -> int:
        name = self._per_transport(transport, "destination_recipient_limit")
        return min(number(self.source, name, minimum=1), MAX_REQUEST_RECIPIENTS)

    def backoff(self, attempts: int) -> float:
        """Seconds until the next try of a recipient that has failed `attempts` times before."""
        return min(self.maximal_backoff, self.minimal_backoff * float(2 ** min(attempts, 32)))
