"""Which notices a result makes, to whom, from whom: Postfix's bounce(8) policy."""

from __future__ import annotations

from typing import Any

import pytest

from mta.bounce.notices import (
    DELAY_WARNED_EXTRA,
    PROBLEM_NOTIFIED_EXTRA,
    NoticeSettings,
    NotifyClass,
    ReportedResult,
    agent_problem,
    delay_due,
    delay_notices,
    needs_notice,
    result_notices,
)
from mta.config.errors import ConfigError
from mta.config.maincf import settings_from_text
from mta.proto.delivery import Handoff
from mta.queue import DsnRet, Notify, QueuedMessage, RecipientResult, RecipientStatus

from .build import (
    ARRIVAL,
    CONTENT,
    NOW,
    dsn_fields,
    message,
    parse,
    recipient,
    report_parts,
    settings,
    subparts,
)

BOUNCED = RecipientStatus.BOUNCED
DELIVERED = RecipientStatus.DELIVERED
DEFERRED = RecipientStatus.DEFERRED


def content() -> bytes:
    return CONTENT


def bounce_result(index: int) -> RecipientResult:
    return RecipientResult("0ABCDEFGHI", index, BOUNCED, "5.1.1", "unknown user")


def test_a_failure_goes_to_the_sender_for_recipients_that_want_it() -> None:
    queued = message(
        [
            recipient(0, "default@remote.test"),
            recipient(1, "failure@remote.test", notify=Notify.FAILURE | Notify.DELAY),
            recipient(2, "never@remote.test", notify=Notify.NEVER),
            recipient(3, "success@remote.test", notify=Notify.SUCCESS),
        ]
    )
    out = result_notices(queued, [bounce_result(i) for i in range(4)], content, settings(), NOW)
    [notice] = out.notices
    assert notice.what == "sender non-delivery notification"
    assert notice.message.sender == ""
    assert [r.address for r in notice.message.recipients] == ["alice@client.test"]
    assert notice.message.recipients[0].notify is Notify.NEVER
    _, parts = report_parts(notice.message.content)
    listed = [block["Final-Recipient"] for block in dsn_fields(parts[1])[1]]
    assert listed == ["rfc822; default@remote.test", "rfc822; failure@remote.test"]
    assert out.marks == {} and out.remarks == []


def test_no_recipient_wanting_a_failure_notice_means_no_notice() -> None:
    queued = message([recipient(0, "never@remote.test", notify=Notify.NEVER)])
    assert result_notices(queued, [bounce_result(0)], content, settings(), NOW).notices == []


def test_ret_full_returns_the_message_to_the_sender() -> None:
    queued = message([recipient(0, "bob@remote.test")], ret=DsnRet.FULL)
    [notice] = result_notices(queued, [bounce_result(0)], content, settings(), NOW).notices
    assert report_parts(notice.message.content)[1][2].get_content_type() == "message/rfc822"
    queued = message([recipient(0, "bob@remote.test")], ret=DsnRet.FULL)
    small = settings(limit=100)
    [notice] = result_notices(queued, [bounce_result(0)], content, small, NOW).notices
    assert report_parts(notice.message.content)[1][2].get_content_type() == "text/rfc822-headers"


def test_bounce_class_sends_a_headers_only_postmaster_copy_of_every_failure() -> None:
    queued = message(
        [recipient(0, "bob@remote.test"), recipient(1, "never@remote.test", notify=Notify.NEVER)],
        ret=DsnRet.FULL,
    )
    out = result_notices(
        queued, [bounce_result(0), bounce_result(1)], content, settings(NotifyClass.BOUNCE), NOW
    )
    sender_notice, copy = out.notices
    assert copy.what == "postmaster non-delivery notification"
    assert copy.message.sender == "double-bounce@example.test"
    assert copy.message.recipients[0].address == "postmaster@example.test"
    notice, parts = report_parts(copy.message.content)
    assert notice["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert len(dsn_fields(parts[1])[1]) == 2
    assert report_parts(sender_notice.message.content)[1][2].get_content_type() == (
        "message/rfc822"
    )


def test_a_failed_notice_is_discarded_by_default_and_never_returned() -> None:
    bounce = message([recipient(0, "alice@client.test")], sender="")
    out = result_notices(bounce, [bounce_result(0)], content, settings(), NOW)
    assert out.notices == []
    assert out.remarks == ["undeliverable notice to the null sender discarded"]


@pytest.mark.parametrize("chosen", [NotifyClass.TWO_BOUNCE, NotifyClass.BOUNCE])
def test_a_double_bounce_goes_to_2bounce_notice_recipient(chosen: NotifyClass) -> None:
    bounce = message([recipient(0, "alice@client.test")], sender="")
    policy = settings(chosen)
    policy = NoticeSettings(
        policy.context, policy.notify_classes, two_bounce_notice_recipient="hostmaster"
    )
    [notice] = result_notices(bounce, [bounce_result(0)], content, policy, NOW).notices
    assert notice.what == "postmaster non-delivery notification"
    assert notice.message.sender == "double-bounce@example.test"
    assert notice.message.recipients[0].address == "hostmaster@example.test"
    header, parts = report_parts(notice.message.content)
    assert header["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert parts[2].get_content_type() == "message/rfc822"  # the whole failed bounce


def test_a_failed_postmaster_notice_is_discarded_so_nothing_loops() -> None:
    notice = message([recipient(0, "postmaster@example.test")], sender="Double-Bounce@example.test")
    all_classes = settings(*NotifyClass)
    out = result_notices(notice, [bounce_result(0)], content, all_classes, NOW)
    assert out.notices == []
    assert out.remarks == ["undeliverable postmaster notification discarded"]


def sent(index: int, handoff: Handoff, notify: Notify = Notify.SUCCESS) -> ReportedResult:
    return ReportedResult(
        "0ABCDEFGHI",
        index,
        DELIVERED,
        "2.0.0",
        "250 2.0.0 Ok",
        relay="mx.far.test[192.0.2.9]:25",
        handoff=handoff,
        notify=notify,
    )


@pytest.mark.parametrize(
    ("handoff", "action"),
    [(Handoff.DELIVERED, "delivered"), (Handoff.RELAYED, "relayed"), (Handoff.DSN_PASSED_ON, None)],
)
def test_notify_success_gets_a_notice_unless_the_next_hop_took_the_request(
    handoff: Handoff, action: str | None
) -> None:
    queued = message([recipient(0, "bob@far.test", DELIVERED, Notify.SUCCESS)])
    result = sent(0, handoff)
    assert needs_notice(result) is (action is not None)
    out = result_notices(queued, [result], content, settings(), NOW)
    if action is None:
        assert out.notices == []
        return
    [notice] = out.notices
    assert notice.what == "sender delivery status notification"
    assert notice.message.sender == ""
    header, parts = report_parts(notice.message.content)
    assert header["Subject"] == "Successful Mail Delivery Report"
    [fields] = dsn_fields(parts[1])[1]
    assert fields["Action"] == action
    assert fields["Status"] == "2.0.0"
    assert parts[2].get_content_type() == "text/rfc822-headers"


def test_no_success_notice_without_notify_success_or_for_a_notice() -> None:
    plain = sent(0, Handoff.DELIVERED, Notify.DEFAULT)
    assert not needs_notice(plain)
    failure_only = sent(0, Handoff.DELIVERED, Notify.FAILURE)
    assert not needs_notice(failure_only)
    queued = message([recipient(0, "bob@far.test", DELIVERED, Notify.SUCCESS)], sender="")
    assert (
        result_notices(queued, [sent(0, Handoff.DELIVERED)], content, settings(), NOW).notices == []
    )


def crashed(index: int) -> ReportedResult:
    return ReportedResult(
        "0ABCDEFGHI",
        index,
        DEFERRED,
        "4.3.0",
        "delivery agent crashed",
        NOW + 10,
        problem=NotifyClass.SOFTWARE,
    )


def test_a_software_problem_tells_error_notice_recipient_once() -> None:
    queued = message([recipient(0, "bob@remote.test", DEFERRED, dsn="4.3.0")])
    out = result_notices(queued, [crashed(0)], content, settings(), NOW)
    [notice] = out.notices
    assert notice.what == "postmaster error notification"
    assert notice.message.recipients[0].address == "postmaster@example.test"
    assert notice.message.sender == "double-bounce@example.test"
    header, parts = report_parts(notice.message.content)
    assert header["Subject"] == "Postmaster Warning: Mail Delivery Problem"
    [fields] = dsn_fields(parts[1])[1]
    assert (fields["Action"], fields["Status"]) == ("delayed", "4.3.0")
    assert "delivery agent crashed" in fields["Diagnostic-Code"]
    assert PROBLEM_NOTIFIED_EXTRA in out.marks
    told = message(
        [recipient(0, "bob@remote.test", DEFERRED)], extras={PROBLEM_NOTIFIED_EXTRA: "1"}
    )
    assert result_notices(told, [crashed(0)], content, settings(), NOW).notices == []
    quiet = settings(NotifyClass.BOUNCE)
    assert result_notices(queued, [crashed(0)], content, quiet, NOW).notices == []


def test_resource_problems_are_our_own_full_disks_only() -> None:
    assert agent_problem(DEFERRED, "4.3.1", "local") is NotifyClass.RESOURCE
    assert agent_problem(DEFERRED, "4.3.1", "mx.far.test[192.0.2.9]:25") is None
    assert agent_problem(DEFERRED, "4.3.0", "local") is None
    assert agent_problem(BOUNCED, "5.3.1", "local") is None


def deferred_message(**fields: Any) -> QueuedMessage:
    return message(
        [
            recipient(0, "default@remote.test", DEFERRED, dsn="4.4.1", reason="connect timed out"),
            recipient(1, "delay@remote.test", DEFERRED, Notify.DELAY, dsn="4.4.1"),
            recipient(2, "failure@remote.test", DEFERRED, Notify.FAILURE, dsn="4.4.1"),
            recipient(3, "done@remote.test", DELIVERED, dsn="2.0.0"),
        ],
        **fields,
    )


def test_the_delay_warning_lists_deferred_recipients_that_want_it_and_marks_the_message() -> None:
    queued = deferred_message()
    policy = settings()  # delay_warning_time 4h; the message is 3h old
    assert not delay_due(queued, policy, NOW)
    later = ARRIVAL + 4 * 3600
    assert delay_due(queued, policy, later)
    out = delay_notices(queued, content, policy, later)
    [notice] = out.notices
    assert notice.what == "sender delay notification"
    header, parts = report_parts(notice.message.content)
    assert header["Subject"] == "Delayed Mail (still being retried)"
    blocks = dsn_fields(parts[1])[1]
    assert [b["Final-Recipient"] for b in blocks] == [
        "rfc822; default@remote.test",
        "rfc822; delay@remote.test",
    ]
    assert {b["Action"] for b in blocks} == {"delayed"}
    assert all(b["Will-Retry-Until"] for b in blocks)
    assert out.marks == {DELAY_WARNED_EXTRA: str(int(later))}


def test_no_delay_warning_when_off_already_sent_or_about_a_notice() -> None:
    later = ARRIVAL + 30 * 86400
    off = settings(delay=0)
    assert not delay_due(deferred_message(), off, later)
    warned = deferred_message(extras={DELAY_WARNED_EXTRA: "1"})
    assert not delay_due(warned, settings(), later)
    assert delay_notices(warned, content, settings(), later).notices == []
    bounce = deferred_message(sender="")
    assert not delay_due(bounce, settings(), later)


def test_delay_class_sends_the_postmaster_a_copy() -> None:
    later = ARRIVAL + 5 * 3600
    out = delay_notices(deferred_message(), content, settings(NotifyClass.DELAY), later)
    _, copy = out.notices
    assert copy.what == "postmaster delay notification"
    header = parse(copy.message.content)
    assert header["Subject"] == "Postmaster Warning: Delayed Mail"
    assert len(subparts(subparts(header)[1])) == 1 + 3  # every deferred recipient


def test_notice_settings_read_main_cf() -> None:
    policy = NoticeSettings.from_settings(
        settings_from_text(
            "myhostname = mx.example.test\nnotify_classes = bounce, 2bounce, delay\n"
            "delay_warning_time = 4\nbounce_size_limit = 1000\n",
            "main.cf",
        )
    )
    assert policy.notify_classes == {NotifyClass.BOUNCE, NotifyClass.TWO_BOUNCE, NotifyClass.DELAY}
    assert policy.context.delay_warning_time == 4 * 3600
    assert policy.context.bounce_size_limit == 1000
    assert policy.double_bounce_address == "double-bounce@mx.example.test"
    default = NoticeSettings.from_settings(
        settings_from_text("myhostname = mx.example.test\n", "main.cf")
    )
    assert default.notify_classes == {NotifyClass.RESOURCE, NotifyClass.SOFTWARE}
    assert default.context.delay_warning_time == 0
    assert default.context.bounce_size_limit == 50000
    with pytest.raises(ConfigError, match="notify_classes"):
        NoticeSettings.from_settings(
            settings_from_text("notify_classes = bounce, typo\n", "main.cf")
        )
    with pytest.raises(ConfigError, match="error_notice_recipient"):
        NoticeSettings.from_settings(
            settings_from_text("error_notice_recipient = a b\n", "main.cf")
        )
    # myhostname goes into every notice's From, Message-Id and Reporting-MTA.
    with pytest.raises(ConfigError, match=r"main\.cf, line 1: myhostname = mx/bad: bad host name"):
        NoticeSettings.from_settings(settings_from_text("myhostname = mx/bad\n", "main.cf"))
