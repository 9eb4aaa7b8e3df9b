"""Which notices a delivery outcome produces, and to whom (Postfix's bounce(8) policy).

Pure functions over a message as the queue holds it and the results qmgr is recording; the
caller (qmgr) enqueues the notices in the write transaction that records those results, so a
notice is never lost nor sent twice, and sets the envelope marks returned with them.

  failure   recipients bounced (by an agent, or expired in the queue): an "Undelivered Mail
            Returned to Sender" report to the sender, for recipients whose NOTIFY is absent
            or has FAILURE (RFC 3461 4.1), with the whole original if RET=FULL (and it is at
            most bounce_size_limit bytes) else its headers. With "bounce" in notify_classes,
            a headers-only "Postmaster Copy" of every bounced recipient goes to
            bounce_notice_recipient.
  double    the sender is null: the failed mail was itself a notice. No notice goes back;
  bounce    with "2bounce" or "bounce" in notify_classes the failure goes to
            2bounce_notice_recipient (the whole original, as Postfix does), else it is
            discarded with a log line. Mail from double_bounce_sender (postmaster notices)
            that fails is discarded with a log line: no loop is possible.
  delay     deferred mail older than delay_warning_time (0: never) and not yet warned:
            one "Delayed Mail (still being retried)" warning to the sender for deferred
            recipients with NOTIFY absent or with DELAY, headers only; the caller marks the
            message (envelope extra DELAY_WARNED_EXTRA) so that it is warned once. With
            "delay" in notify_classes a copy goes to delay_notice_recipient.
  success   recipients with NOTIFY=SUCCESS that an agent delivered (Action: delivered) or
            handed to a next hop that took no DSN request (Action: relayed); none when the
            next hop took the request (Handoff.DSN_PASSED_ON): it reports. Headers only.
  problem   "resource" and "software" classes: a recipient deferred because of trouble on
            our side (ReportedResult.problem, set by qmgr: see docs/bounces.md) makes a
            headers-only notice to error_notice_recipient, once per message
            (PROBLEM_NOTIFIED_EXTRA), when the class is in notify_classes.

No notice is ever about mail from the null sender or double_bounce_sender except the double
bounce above, so notices cannot multiply.

Parameters: notify_classes (resource, software), bounce_notice_recipient,
2bounce_notice_recipient, delay_notice_recipient, error_notice_recipient (postmaster),
double_bounce_sender (double-bounce), bounce_size_limit (50000), delay_warning_time (0h),
maximal_queue_lifetime (5d), myhostname, myorigin. Addresses without a domain get
@$myorigin, as Postfix's cleanup gives them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from mta.bounce.report import (
    Action,
    Composed,
    Kind,
    ReportContext,
    ReportEntry,
    Returned,
    compose,
)
from mta.config.errors import ConfigError
from mta.config.maincf import Settings
from mta.config.values import check_host_name, duration, located, number, parse_list
from mta.proto.delivery import Handoff
from mta.queue import (
    BodyType,
    DsnRet,
    Message,
    Notify,
    QueuedMessage,
    Recipient,
    RecipientResult,
    RecipientState,
    RecipientStatus,
)

DELAY_WARNED_EXTRA = "delay_warned"
"""Envelope extra: the delay warning was sent (value: its Unix time)."""
PROBLEM_NOTIFIED_EXTRA = "problem_notified"
"""Envelope extra: error_notice_recipient was told of a resource or software problem."""


class NotifyClass(enum.StrEnum):
    """The notify_classes words (Postfix's postconf(5))."""

    BOUNCE = "bounce"
    TWO_BOUNCE = "2bounce"
    DELAY = "delay"
    POLICY = "policy"
    PROTOCOL = "protocol"
    RESOURCE = "resource"
    SOFTWARE = "software"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class NoticeSettings:
    """The main.cf parameters of notices, read once and checked."""

    context: ReportContext
    notify_classes: frozenset[NotifyClass] = frozenset({NotifyClass.RESOURCE, NotifyClass.SOFTWARE})
    bounce_notice_recipient: str = "postmaster"
    two_bounce_notice_recipient: str = "postmaster"
    delay_notice_recipient: str = "postmaster"
    error_notice_recipient: str = "postmaster"
    double_bounce_sender: str = "double-bounce"

    @classmethod
    def from_settings(cls, settings: Settings) -> NoticeSettings:
        classes = set()
        for word in parse_list(settings.get("notify_classes")):
            try:
                classes.add(NotifyClass(word.lower()))
            except ValueError:
                raise ConfigError(f"notify_classes: unknown class {word!r}") from None
        recipients = {}
        for name in (
            "bounce_notice_recipient",
            "2bounce_notice_recipient",
            "delay_notice_recipient",
            "error_notice_recipient",
            "double_bounce_sender",
        ):
            value = settings.get(name).strip()
            if not value or any(c.isspace() or not c.isprintable() for c in value):
                raise ConfigError(f"{name} = {value!r}: expected one address")
            recipients[name] = value
        located(settings, "myhostname", check_host_name)
        myhostname = settings.get("myhostname").strip()
        context = ReportContext(
            myhostname=myhostname,
            myorigin=settings.get("myorigin").strip() or myhostname,
            bounce_size_limit=number(settings, "bounce_size_limit"),
            delay_warning_time=duration(settings, "delay_warning_time", "h", minimum=0),
            maximal_queue_lifetime=duration(settings, "maximal_queue_lifetime", "d"),
        )
        return cls(
            context=context,
            notify_classes=frozenset(classes),
            bounce_notice_recipient=recipients["bounce_notice_recipient"],
            two_bounce_notice_recipient=recipients["2bounce_notice_recipient"],
            delay_notice_recipient=recipients["delay_notice_recipient"],
            error_notice_recipient=recipients["error_notice_recipient"],
            double_bounce_sender=recipients["double_bounce_sender"],
        )

    def qualify(self, address: str) -> str:
        return address if "@" in address else f"{address}@{self.context.myorigin}"

    @property
    def double_bounce_address(self) -> str:
        return self.qualify(self.double_bounce_sender)

    def is_double_bounce(self, sender: str) -> bool:
        """The double-bounce address: mail that is itself a postmaster notice."""
        return sender.lower() == self.double_bounce_address.lower()

    def is_notice_sender(self, sender: str) -> bool:
        """The null sender or the double-bounce address: mail that is itself a notice."""
        return not sender or self.is_double_bounce(sender)


@dataclass(frozen=True, slots=True)
class ReportedResult(RecipientResult):
    """A result as qmgr records it, with what a notice needs beyond what the queue keeps."""

    relay: str = ""
    handoff: Handoff = Handoff.DELIVERED
    notify: Notify = Notify.DEFAULT
    problem: NotifyClass | None = None
    """RESOURCE or SOFTWARE when the deferral was caused by trouble on our side."""

    @property
    def wants_success_notice(self) -> bool:
        return (
            self.status is RecipientStatus.DELIVERED
            and bool(self.notify & Notify.SUCCESS)
            and not self.notify & Notify.NEVER
            and self.handoff is not Handoff.DSN_PASSED_ON
        )


SOFTWARE_PROBLEMS: dict[str, NotifyClass] = {
    "delivery agent crashed": NotifyClass.SOFTWARE,
    "delivery agent did not report": NotifyClass.SOFTWARE,
}
"""qmgr's own deferral reasons that are software problems: an agent's connection dropped
with requests in flight (it crashed, or qmgr dropped it for a malformed answer), or an
answer left recipients out."""

MAIL_SYSTEM_FULL = "3.1"
"""RFC 3463 X.3.1 "Mail system full": the resource problem a delivery agent reports."""


def agent_problem(status: RecipientStatus, dsn: str, relay: str) -> NotifyClass | None:
    """RESOURCE for a deferral an agent reports as X.3.1 about its own system (the local
    agent's full disk). A relay of "host[address]:port" is a next hop's reply, whose
    storage is not ours to report."""
    if status is not RecipientStatus.DEFERRED or "[" in relay:
        return None
    return NotifyClass.RESOURCE if dsn[2:] == MAIL_SYSTEM_FULL and dsn[1:2] == "." else None


def needs_notice(result: RecipientResult) -> bool:
    """Whether this result may produce a notice (cheap: most results do not)."""
    if result.status is RecipientStatus.BOUNCED:
        return True
    if isinstance(result, ReportedResult):
        return result.wants_success_notice or result.problem is not None
    return False


@dataclass(frozen=True, slots=True)
class Notice:
    what: str
    """For the log line "QUEUEID: <what>: NEW_ID", e.g. "sender non-delivery notification"."""
    message: Message


@dataclass(slots=True)
class Notices:
    """The notices about one message, log lines for those not sent, and envelope marks."""

    notices: list[Notice] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)


def _wants(notify: Notify, condition: Notify) -> bool:
    """No NOTIFY (RFC 3461 4.1) means FAILURE and DELAY, as in Postfix; NEVER means none."""
    if notify & Notify.NEVER:
        return False
    return notify == Notify.DEFAULT or bool(notify & condition)


def wants_failure_notice(notify: Notify) -> bool:
    return _wants(notify, Notify.FAILURE)


def wants_delay_notice(notify: Notify) -> bool:
    return _wants(notify, Notify.DELAY)


def _entry(state: RecipientState, action: Action, result: RecipientResult | None) -> ReportEntry:
    recipient = state.recipient
    status, reason = (
        (result.dsn, result.reason) if result is not None else (state.dsn, state.reason)
    )
    return ReportEntry(
        address=recipient.address,
        orig_address=recipient.orig_address,
        orcpt=recipient.orcpt,
        action=action,
        status=status,
        diagnostic=reason,
        relay=result.relay if isinstance(result, ReportedResult) else "",
    )


NOTICE_NAMES = {
    Kind.FAILURE: "non-delivery",
    Kind.DELAY: "delay",
    Kind.SUCCESS: "delivery status",
    Kind.PROBLEM: "error",
}
"""Postfix's names of the notices in qmgr's log line "QUEUEID: sender delay notification: ID"."""


class _Builder:
    """Makes the notices about one message, reading its content at most once."""

    def __init__(
        self,
        message: QueuedMessage,
        content: Callable[[], bytes],
        settings: NoticeSettings,
        now: float,
    ) -> None:
        self.message = message
        self._content = content
        self._cached: bytes | None = None
        self.settings = settings
        self.now = now
        self.out = Notices()

    def content(self) -> bytes:
        if self._cached is None:
            self._cached = self._content()
        return self._cached

    def to_sender(
        self, kind: Kind, entries: Sequence[ReportEntry], returned: Returned = Returned.HEADERS
    ) -> None:
        """The notice to the message's sender, from the null sender (RFC 5321 4.5.5)."""
        self._add(kind, entries, self.message.sender, "", postmaster=False, returned=returned)

    def to_postmaster(
        self,
        kind: Kind,
        entries: Sequence[ReportEntry],
        to: str,
        returned: Returned = Returned.HEADERS,
    ) -> None:
        """A postmaster notice or copy to `to`, from double_bounce_sender (so that its own
        failure is discarded, never returned)."""
        sender = self.settings.double_bounce_address
        self._add(kind, entries, to, sender, postmaster=True, returned=returned)

    def _add(
        self,
        kind: Kind,
        entries: Sequence[ReportEntry],
        to: str,
        sender: str,
        *,
        postmaster: bool,
        returned: Returned,
    ) -> None:
        if not entries:
            return
        to = self.settings.qualify(to)
        composed: Composed = compose(
            kind,
            self.message,
            entries,
            self.content(),
            self.settings.context,
            to=to,
            postmaster=postmaster,
            returned=returned,
            now=self.now,
            tag=f"{kind.value[0]}{'p' if postmaster else 's'}{len(self.out.notices)}",
        )
        notice = Message(
            sender=sender,
            recipients=(Recipient(address=to, notify=Notify.NEVER),),
            content=composed.content,
            arrival_time=self.now,
            body_type=BodyType.EIGHT_BIT_MIME if composed.eight_bit else BodyType.SEVEN_BIT,
            smtputf8=composed.smtputf8,
        )
        what = f"{'postmaster' if postmaster else 'sender'} {NOTICE_NAMES[kind]} notification"
        self.out.notices.append(Notice(what, notice))


def _classes(settings: NoticeSettings, *wanted: NotifyClass) -> bool:
    return any(c in settings.notify_classes for c in wanted)


def result_notices(
    message: QueuedMessage,
    results: Iterable[RecipientResult],
    content: Callable[[], bytes],
    settings: NoticeSettings,
    now: float,
) -> Notices:
    """The failure, success and problem notices for the results of one message recorded in
    one transaction; `message` is read after they were recorded."""
    by_index: dict[int, RecipientResult] = {r.index: r for r in results}
    bounced: list[tuple[RecipientState, RecipientResult]] = []
    delivered: list[tuple[RecipientState, ReportedResult]] = []
    problems: list[tuple[RecipientState, ReportedResult]] = []
    for state in message.recipients:
        result = by_index.get(state.index)
        if result is None or result.status is not state.status:
            continue  # not recorded (unknown recipient), or overtaken
        if result.status is RecipientStatus.BOUNCED:
            bounced.append((state, result))
        elif isinstance(result, ReportedResult):
            if result.wants_success_notice:
                delivered.append((state, result))
            elif result.problem is not None and result.status is RecipientStatus.DEFERRED:
                problems.append((state, result))
    builder = _Builder(message, content, settings, now)
    if bounced:
        _failure(builder, bounced)
    if delivered and not settings.is_notice_sender(message.sender):
        entries = [
            _entry(
                state,
                Action.RELAYED if result.handoff is Handoff.RELAYED else Action.DELIVERED,
                result,
            )
            for state, result in delivered
        ]
        builder.to_sender(Kind.SUCCESS, entries)
    if problems:
        _problem(builder, problems)
    return builder.out


def _failure(builder: _Builder, bounced: list[tuple[RecipientState, RecipientResult]]) -> None:
    message, settings = builder.message, builder.settings
    everyone = [_entry(state, Action.FAILED, result) for state, result in bounced]
    if settings.is_double_bounce(message.sender):
        builder.out.remarks.append("undeliverable postmaster notification discarded")
        return
    if not message.sender:
        if not _classes(settings, NotifyClass.TWO_BOUNCE, NotifyClass.BOUNCE):
            builder.out.remarks.append("undeliverable notice to the null sender discarded")
            return
        builder.to_postmaster(
            Kind.FAILURE, everyone, settings.two_bounce_notice_recipient, Returned.FULL
        )
        return
    wanted = [
        _entry(state, Action.FAILED, result)
        for state, result in bounced
        if wants_failure_notice(state.recipient.notify)
    ]
    returned = Returned.FULL if message.dsn_ret is DsnRet.FULL else Returned.HEADERS
    builder.to_sender(Kind.FAILURE, wanted, returned)
    if _classes(settings, NotifyClass.BOUNCE):
        builder.to_postmaster(Kind.FAILURE, everyone, settings.bounce_notice_recipient)


def _problem(builder: _Builder, problems: list[tuple[RecipientState, ReportedResult]]) -> None:
    message, settings = builder.message, builder.settings
    if PROBLEM_NOTIFIED_EXTRA in message.extras:
        return
    if settings.is_double_bounce(message.sender):
        return
    classes = {result.problem for _, result in problems}
    if not any(c in settings.notify_classes for c in classes if c is not None):
        return
    entries = [
        _entry(state, Action.DELAYED, result)
        for state, result in problems
        if result.problem in settings.notify_classes
    ]
    builder.to_postmaster(Kind.PROBLEM, entries, settings.error_notice_recipient)
    builder.out.marks[PROBLEM_NOTIFIED_EXTRA] = str(int(builder.now))


def delay_due(message: QueuedMessage, settings: NoticeSettings, now: float) -> bool:
    """Whether `message` (still queued with deferred recipients) is owed its delay warning."""
    warn_after = settings.context.delay_warning_time
    return (
        warn_after > 0
        and now - message.arrival_time >= warn_after
        and DELAY_WARNED_EXTRA not in message.extras
        and not settings.is_notice_sender(message.sender)
    )


def delay_notices(
    message: QueuedMessage,
    content: Callable[[], bytes],
    settings: NoticeSettings,
    now: float,
) -> Notices:
    """The delay warning (and its postmaster copy) for a message delay_due() says is owed
    one; empty when no recipient is deferred. The mark is set even when no recipient wants
    the warning, so the message is not looked at again."""
    deferred = [r for r in message.recipients if r.status is RecipientStatus.DEFERRED]
    if not deferred or not delay_due(message, settings, now):
        return Notices()
    builder = _Builder(message, content, settings, now)
    wanted = [
        _entry(state, Action.DELAYED, None)
        for state in deferred
        if wants_delay_notice(state.recipient.notify)
    ]
    builder.to_sender(Kind.DELAY, wanted)
    if _classes(settings, NotifyClass.DELAY):
        everyone = [_entry(state, Action.DELAYED, None) for state in deferred]
        builder.to_postmaster(Kind.DELAY, everyone, settings.delay_notice_recipient)
    builder.out.marks[DELAY_WARNED_EXTRA] = str(int(now))
    return builder.out
