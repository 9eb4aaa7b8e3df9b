"""Golden cases of content checks, in the style of Postfix's own tests: one file per case.

A case file has sections, each opened by a `== NAME` line:
  == header_checks | mime_header_checks | nested_header_checks | body_checks
      a regexp table (mime_header_checks and nested_header_checks default to header_checks,
      as in main.cf)
  == settings        NAME = VALUE lines for the limits (header_size_limit, ...)
  == message         the content; each line gets CRLF
  == expect          the inspection as describe() writes it: the decision, then each log line,
                     then the content that would be queued
Lines before the first section say what the case proves. Set MTA_GOLDEN_UPDATE=1 to rewrite
the expect sections from what the code does (then read the diff).
"""

from __future__ import annotations

import re
from pathlib import Path

from mta.cleanup import ContentChecks, ContentInspector, Inspection, log_context
from mta.maps import LookupTable, open_table

GOLDEN = Path(__file__).parent / "golden"
TABLE_SECTIONS = ("header_checks", "mime_header_checks", "nested_header_checks", "body_checks")
LIMITS = ("header_size_limit", "body_checks_size_limit", "mime_nesting_limit")
CONTEXT = log_context(
    "unknown[127.0.0.1]", "sender@example.org", "rcpt@example.net", "ESMTP", "client.example"
)
_SECTION = re.compile(r"^== (\w+)\n", re.MULTILINE)


def sections(text: str) -> dict[str, str]:
    parts = _SECTION.split(text)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def message_bytes(section: str) -> bytes:
    return b"".join(line.encode() + b"\r\n" for line in section.splitlines())


def case_checks(case: dict[str, str], table_dir: Path) -> ContentChecks:
    tables: dict[str, tuple[LookupTable, ...]] = {}
    for name in TABLE_SECTIONS:
        if name in case:
            path = table_dir / name
            path.write_text(case[name])
            tables[name] = (open_table(f"regexp:{path}", shared=False),)
    header = tables.get("header_checks", ())
    settings = (line.partition("=") for line in case.get("settings", "").splitlines())
    limits = {name.strip(): int(value) for name, _, value in settings if name.strip() in LIMITS}
    defaults = ContentChecks()
    return ContentChecks(
        header=header,
        mime_header=tables.get("mime_header_checks", header),
        nested_header=tables.get("nested_header_checks", header),
        body=tables.get("body_checks", ()),
        header_size_limit=limits.get("header_size_limit", defaults.header_size_limit),
        body_checks_size_limit=limits.get(
            "body_checks_size_limit", defaults.body_checks_size_limit
        ),
        mime_nesting_limit=limits.get("mime_nesting_limit", defaults.mime_nesting_limit),
    )


def describe(inspection: Inspection, content: bytes) -> str:
    """The decision, the log lines and the content to queue, as the expect section has them."""
    reply = inspection.reply
    lines = []
    if reply is not None:
        lines.append(f"reply: {reply[0]} {reply[1]} {reply[2]}")
    elif inspection.discarded:
        lines.append("discard")
    else:
        lines.append("queue" + (" on hold" if inspection.hold else ""))
    if inspection.redirect is not None:
        lines.append(f"redirect: {inspection.redirect}")
    if inspection.filter is not None:
        lines.append(f"filter: {inspection.filter}")
    lines.extend(f"log: {event.log_text('QUEUEID', CONTEXT)}" for event in inspection.events)
    if reply is None and not inspection.discarded:
        lines.append("content:")
        queued = inspection.apply(content).decode("utf-8", "surrogateescape")
        assert queued.endswith("\r\n") or not queued
        lines.extend(queued.removesuffix("\r\n").split("\r\n") if queued else [])
    return "\n".join(lines) + "\n"


def run_case(path: Path, table_dir: Path, chunks: list[int] | None = None) -> str:
    """describe() of the case, its content fed whole or cut at the given chunk sizes."""
    case = sections(path.read_text())
    content = message_bytes(case["message"])
    inspector = ContentInspector(case_checks(case, table_dir))
    position = 0
    for size in chunks or []:
        inspector.feed(content[position : position + size])
        position += size
    inspector.feed(content[position:])
    return describe(inspector.finish(), content)
