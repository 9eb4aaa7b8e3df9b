"""The RFC 3464 report itself, parsed back with Python's email package."""

from __future__ import annotations

from dataclasses import replace

from mta.bounce.report import (
    MAX_REPORT_BYTES,
    Action,
    Kind,
    ReportContext,
    ReportEntry,
    Returned,
    compose,
    diagnostic_code,
    fold,
    human_time,
    mail_date,
)
from mta.queue import DsnRet

from .build import (
    ARRIVAL,
    CONTENT,
    CONTEXT,
    NOW,
    dsn_fields,
    message,
    parse,
    recipient,
    report_parts,
    subparts,
    text,
)

SMTP_REASON = (
    "host mx.remote.test[192.0.2.1] said: 550 5.1.1 <bob@remote.test>: unknown user "
    "(in reply to RCPT TO command)"
)


def composed(
    entries: list[ReportEntry],
    returned: Returned = Returned.HEADERS,
    content: bytes = CONTENT,
    context: ReportContext = CONTEXT,
    postmaster: bool = False,
    kind: Kind = Kind.FAILURE,
    **fields: object,
) -> bytes:
    """The notice of kind (a failure unless told otherwise) to alice@client.test about her
    message to bob@remote.test."""
    queued = message([recipient(0, "bob@remote.test")], **fields)  # type: ignore[arg-type]
    return compose(
        kind,
        queued,
        entries,
        content,
        context,
        to="alice@client.test",
        postmaster=postmaster,
        returned=returned,
        now=NOW,
        tag="t",
    ).content


BOB = ReportEntry(
    "bob@remote.test",
    orcpt="rfc822;Bob@Remote.test",
    action=Action.FAILED,
    status="5.1.1",
    diagnostic=SMTP_REASON,
    relay="mx.remote.test[192.0.2.1]:25",
)


def test_failure_notice_is_a_multipart_report_with_postfix_wording_and_per_recipient_fields() -> (
    None
):
    carol = ReportEntry(
        "carol@remote.test", orig_address="c@alias.test", diagnostic="mail for remote.test refused"
    )
    notice, parts = report_parts(composed([BOB, carol], envid="ENV-42"))
    assert notice["Subject"] == "Undelivered Mail Returned to Sender"
    assert notice["From"] == "MAILER-DAEMON@example.test (Mail Delivery System)"
    assert notice["To"] == "alice@client.test"
    assert notice["Auto-Submitted"] == "auto-replied"
    assert notice["In-Reply-To"] == notice["References"] == "<original.1@client.test>"
    notification = text(parts[0])
    assert "This is the mail system at host mx.example.test." in notification
    assert "I'm sorry to have to inform you that your message could not" in notification
    assert (
        "<carol@remote.test> (expanded from <c@alias.test>): mail for remote.test\r\n    refused"
        in notification
    )
    per_message, (bob, carol_fields) = dsn_fields(parts[1])
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["X-Mta-Queue-ID"] == "0ABCDEFGHI"
    assert per_message["Arrival-Date"]
    assert bob["Final-Recipient"] == "rfc822; bob@remote.test"
    assert bob["Original-Recipient"] == "rfc822;Bob@Remote.test"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.remote.test"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@remote.test>: unknown user"
    assert carol_fields["Original-Recipient"] == "rfc822; c@alias.test"
    assert carol_fields["Status"] == "5.0.0"  # none given: one that fits "failed"
    assert carol_fields["Remote-MTA"] is None
    assert carol_fields["Diagnostic-Code"] == "X-mta; mail for remote.test refused"
    assert "Original-Envelope-Id" not in dsn_fields(report_parts(composed([BOB]))[1][1])[0]


def test_ret_hdrs_returns_the_headers_and_ret_full_the_whole_message() -> None:
    _, parts = report_parts(composed([BOB], Returned.HEADERS, ret=DsnRet.HDRS))
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert parts[2]["Content-Description"] == "Undelivered Message Headers"
    headers = text(parts[2])
    assert headers.startswith("Return-Path: <alice@client.test>\r\nReceived: from client.test")
    assert "Subject: quarterly figures" in headers
    assert "only RET=FULL returns" not in headers

    _, parts = report_parts(composed([BOB], Returned.FULL, ret=DsnRet.FULL))
    assert parts[2].get_content_type() == "message/rfc822"
    assert parts[2]["Content-Description"] == "Undelivered Message"
    [original] = subparts(parts[2])
    assert original["Subject"] == "quarterly figures"
    assert original["Return-Path"] == "<alice@client.test>"
    assert "the body line that only RET=FULL returns" in text(original)


def test_ret_full_past_bounce_size_limit_returns_headers_only() -> None:
    at_limit = replace(CONTEXT, bounce_size_limit=len(CONTENT))
    _, parts = report_parts(composed([BOB], Returned.FULL, context=at_limit))
    assert parts[2].get_content_type() == "message/rfc822"
    below = replace(CONTEXT, bounce_size_limit=len(CONTENT) - 1)
    _, parts = report_parts(composed([BOB], Returned.FULL, context=below))
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "only RET=FULL returns" not in text(parts[2])
    big = CONTENT + b"x" * 60_000 + b"\r\n"
    _, parts = report_parts(composed([BOB], Returned.FULL, content=big))
    assert parts[2].get_content_type() == "text/rfc822-headers"


def test_no_value_can_add_a_header_line() -> None:
    evil = ReportEntry(
        "bob@remote.test\r\nBcc: victim@example.org",
        orcpt="rfc822;x\r\nX-Injected: 1",
        diagnostic="refused\r\n\r\n--fake-boundary\nContent-Type: text/html",
        relay="mx[1.2.3.4]:25",
    )
    data = composed([evil], envid="E\r\nX-Evil: 1")
    _, parts = report_parts(data)
    assert b"\r\nBcc:" not in data and b"\nX-Injected" not in data and b"\nX-Evil" not in data
    assert b"\nContent-Type: text/html" not in data
    _, (fields,) = dsn_fields(parts[1])
    assert fields["Final-Recipient"] == "rfc822; bob@remote.test  Bcc: victim@example.org"


def test_long_reasons_are_folded_and_no_line_is_too_long() -> None:
    long_entry = replace(BOB, diagnostic="word " * 2000 + "x" * 3000)
    data = composed([long_entry])
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    _, parts = report_parts(data)
    _, (fields,) = dsn_fields(parts[1])
    assert fields["Diagnostic-Code"].startswith("X-mta; word word")
    assert fold("Diagnostic-Code: " + "a" * 5000)[1].startswith(" ")


def test_many_recipients_stop_at_the_report_bound_and_are_counted() -> None:
    entries = [ReportEntry(f"user{i}@remote.test", diagnostic="r" * 900) for i in range(2000)]
    data = composed(entries)
    assert len(data) < 2 * MAX_REPORT_BYTES
    _, parts = report_parts(data)
    assert "more recipients are not listed here" in text(parts[0])
    listed = len(dsn_fields(parts[1])[1])
    assert 0 < listed < 2000


def test_a_boundary_found_in_the_returned_message_is_changed() -> None:
    boundary = f"0ABCDEFGHI.{int(NOW)}/mx.example.test"
    content = CONTENT + f"--{boundary}--\r\n".encode()
    data = composed([BOB], Returned.FULL, content=content)
    notice, parts = report_parts(data)
    assert notice.get_boundary() != boundary
    [original] = subparts(parts[2])
    assert f"--{boundary}--" in text(original)


def test_smtputf8_mail_returns_message_global_headers_in_8bit() -> None:
    content = "Subject: caf\u00e9\r\n\r\nbody\r\n".encode()
    entry = ReportEntry("j\u00f6rg@remote.test", diagnostic="unknown user")
    data = composed([entry], content=content, smtputf8=True)
    notice = parse(data)
    assert notice["Content-Transfer-Encoding"] == "8bit"
    parts = subparts(notice)
    assert parts[2].get_content_type() == "message/global-headers"
    assert "Final-Recipient: utf-8; j\u00f6rg@remote.test" in data.decode()


def test_postmaster_copy_has_the_postmaster_subject_and_no_boilerplate() -> None:
    notice, parts = report_parts(composed([BOB], postmaster=True))
    assert notice["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert notice["Auto-Submitted"] == "auto-generated"
    assert "I'm sorry" not in text(parts[0])
    assert "<bob@remote.test>: host mx.remote.test" in text(parts[0])


def test_delay_warning_says_how_long_and_until_when() -> None:
    entry = ReportEntry(
        "bob@remote.test", action=Action.DELAYED, status="4.4.1", diagnostic="connect timed out"
    )
    notice, parts = report_parts(composed([entry], kind=Kind.DELAY))
    assert notice["Subject"] == "Delayed Mail (still being retried)"
    notification = text(parts[0])
    assert "THIS IS A WARNING ONLY." in notification
    assert "could not be delivered for more than 4 hour(s)." in notification
    assert "It will be retried until it is 5 day(s) old." in notification
    _, (fields,) = dsn_fields(parts[1])
    assert fields["Action"] == "delayed"
    assert fields["Status"] == "4.4.1"
    assert fields["Will-Retry-Until"] == mail_date(ARRIVAL + 5 * 86400)
    assert parts[2]["Content-Description"] == "Undelivered Message Headers"


def test_success_notice_reports_delivered_and_relayed() -> None:
    entries = [
        ReportEntry(
            "bob@remote.test",
            action=Action.DELIVERED,
            status="2.0.0",
            diagnostic="delivered to maildir",
        ),
        ReportEntry(
            "carol@far.test",
            action=Action.RELAYED,
            status="2.0.0",
            diagnostic="250 2.0.0 Ok",
            relay="mx.far.test[192.0.2.9]:25",
        ),
    ]
    notice, parts = report_parts(composed(entries, kind=Kind.SUCCESS))
    assert notice["Subject"] == "Successful Mail Delivery Report"
    assert "Your message was successfully delivered to the destination(s)" in text(parts[0])
    _, (bob, carol) = dsn_fields(parts[1])
    assert (bob["Action"], carol["Action"]) == ("delivered", "relayed")
    assert carol["Remote-MTA"] == "dns; mx.far.test"
    assert parts[2]["Content-Description"] == "Message Headers"


def test_helpers() -> None:
    assert diagnostic_code("connect to x[1.2.3.4]:25: Connection refused") == (
        "X-mta; connect to x[1.2.3.4]:25: Connection refused"
    )
    assert diagnostic_code("host x said: 452 4.2.2 full (in reply to end of DATA command)") == (
        "smtp; 452 4.2.2 full"
    )
    assert human_time(4 * 3600) == "4 hour(s)"
    assert human_time(90) == "90 second(s)"
    assert human_time(5 * 86400) == "5 day(s)"
