"""Address rewriting in message headers (mta.cleanup.headers): headers in, headers out."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.cleanup import CheckSpecs, ContentInspector, HeaderRewriter
from mta.cleanup.headers import MAX_HEADER_ADDRESSES, address_spans
from mta.config.maincf import settings_from_text

MAPS = (
    "canonical_maps = inline:{ old@example.org=new@example.org, "
    "bob@example.org=john..doe@example.org }\n"
    "masquerade_domains = example.com\n"
)

GOLDEN = [
    # sender headers: canonical maps and masquerading, display names kept as written
    (
        b'From: "Doe, John" <old@example.org>\r\n',
        b'From: "Doe, John" <new@example.org>\r\n',
    ),
    (b"Sender: joe@host.example.com\r\n", b"Sender: joe@example.com\r\n"),
    (
        b"Reply-To: Joe (work) <joe@host.example.com>\r\n",
        b"Reply-To: Joe (work) <joe@example.com>\r\n",
    ),
    (b"Resent-From: old@example.org (Old)\r\n", b"Resent-From: new@example.org (Old)\r\n"),
    # recipient headers, folded lists, quotes and commas in display names
    (
        b'To: "a, \\"b\\"" <old@example.org>,\r\n\tother@example.net, x@mail.example.com\r\n',
        b'To: "a, \\"b\\"" <new@example.org>,\r\n\tother@example.net, x@example.com\r\n',
    ),
    (b"Cc: Bob <bob@example.org>\r\n", b'Cc: Bob <"john..doe"@example.org>\r\n'),
    # groups
    (b"To: undisclosed-recipients:;\r\n", b"To: undisclosed-recipients:;\r\n"),
    (
        b"Bcc: team: old@example.org, Joe <joe@a.example.com>;\r\n",
        b"Bcc: team: new@example.org, Joe <joe@example.com>;\r\n",
    ),
    # not address headers, or nothing to change: byte-identical
    (b"Subject: old@example.org\r\n", b"Subject: old@example.org\r\n"),
    (b"To:   Joe   <joe@example.net>  ,x@y\n", b"To:   Joe   <joe@example.net>  ,x@y\n"),
    (b'From: "old"@example.org\r\n', b'From: "old"@example.org\r\n'),
]


def rewritten(main_cf: str, headers: bytes, tmp_path: Path) -> bytes:
    specs = CheckSpecs.from_settings(settings_from_text(main_cf, str(tmp_path / "main.cf")))
    assert specs is not None
    inspector = ContentInspector(specs.open())
    content = headers + b"\r\nbody old@example.org\r\n"
    inspector.feed(content)
    inspection = inspector.finish()
    assert inspection.failure is None
    result = inspection.apply(content)
    assert result.endswith(b"\r\nbody old@example.org\r\n")
    return result[: -len(b"\r\nbody old@example.org\r\n")]


@pytest.mark.parametrize(("before", "after"), GOLDEN)
def test_golden(before: bytes, after: bytes, tmp_path: Path) -> None:
    assert rewritten(MAPS, before, tmp_path) == after


def test_unchanged_headers_get_no_edit(tmp_path: Path) -> None:
    specs = CheckSpecs.from_settings(settings_from_text(MAPS, str(tmp_path / "main.cf")))
    assert specs is not None
    inspector = ContentInspector(specs.open())
    inspector.feed(b"From: a@example.net\r\nTo: undisclosed-recipients:;\r\n\r\nbody\r\n")
    assert inspector.finish().edits == ()
    assert not inspector.inspecting


def test_classes_without_headers_leave_them_alone(tmp_path: Path) -> None:
    main_cf = (
        "canonical_maps = inline:{ old@example.org=new@example.org }\n"
        "canonical_classes = envelope_sender, envelope_recipient\n"
        "masquerade_domains = example.com\n"
        "masquerade_classes = envelope_sender\n"
    )
    settings = settings_from_text(main_cf, str(tmp_path / "main.cf"))
    assert HeaderRewriter.from_settings(settings) is None
    assert CheckSpecs.from_settings(settings) is None


def test_sender_and_recipient_classes_are_separate(tmp_path: Path) -> None:
    main_cf = (
        "sender_canonical_maps = inline:{ old@example.org=sender@example.org }\n"
        "recipient_canonical_maps = inline:{ old@example.org=rcpt@example.org }\n"
        "recipient_canonical_classes = envelope_recipient\n"
    )
    headers = b"From: old@example.org\r\nTo: old@example.org\r\n"
    assert rewritten(main_cf, headers, tmp_path) == (
        b"From: sender@example.org\r\nTo: old@example.org\r\n"
    )


def test_nothing_configured_means_no_inspector(tmp_path: Path) -> None:
    assert CheckSpecs.from_settings(settings_from_text("", str(tmp_path / "main.cf"))) is None


def test_a_table_that_cannot_answer_is_a_failure(tmp_path: Path) -> None:
    main_cf = f"canonical_maps = texthash:{tmp_path / 'missing'}\n"
    specs = CheckSpecs.from_settings(settings_from_text(main_cf, str(tmp_path / "main.cf")))
    assert specs is not None
    inspector = ContentInspector(specs.open())
    inspector.feed(b"Subject: x\r\nFrom: a@example.net\r\n\r\nbody\r\n")
    inspection = inspector.finish()
    assert inspection.failure is not None and "a@example.net" in inspection.failure
    assert inspection.reply == (451, "4.3.0", "Temporary lookup failure")


def test_header_checks_see_the_header_before_rewriting(tmp_path: Path) -> None:
    table = tmp_path / "header_checks"
    table.write_text("/^From: .*old@/ PREPEND X-Seen: yes\n")
    main_cf = MAPS + f"header_checks = regexp:{table}\n"
    assert rewritten(main_cf, b"From: old@example.org\r\n", tmp_path) == (
        b"X-Seen: yes\r\nFrom: new@example.org\r\n"
    )


def test_addresses_per_header_are_bounded() -> None:
    value = " " + ", ".join(f"u{n}@example.com" for n in range(MAX_HEADER_ADDRESSES + 5))
    assert len(address_spans(value)) == MAX_HEADER_ADDRESSES


def test_spans_skip_quoted_and_commented_addresses() -> None:
    value = ' a (c) b@c, <"q"@d>, <x(y)@z>, w@v (comment)'
    assert [value[start:end] for start, end in address_spans(value)] == ["w@v"]
