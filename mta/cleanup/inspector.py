"""The streaming content inspector: header_checks(5) and body_checks as cleanup(8) applies them.

    inspector = ContentInspector(checks)
    inspector.feed(chunk)            # message content as it arrives, split anywhere
    inspection = inspector.finish()  # what the tables decided
    content = inspection.apply(content)

Content is read as lines ending in LF (CRLF as received; a bare LF, where smtpd lets one
through, ends a line as it does for Postfix). Headers are assembled into logical headers: a
line that starts with a space or a tab continues the one before, and the table sees the whole
header with LF between its lines ("Subject: a\\n\\tb"), as Postfix's tables do. The inspector
never holds the message: it records edits (offsets into the content and what replaces them)
and the caller applies them to the content it keeps anyway.

Classes, as Postfix's mime_state(3) tells them apart:
  primary message headers                      header_checks
  MIME headers (Content-*, MIME-Version) of any
    header block, and every header of a part   mime_header_checks
  headers of an attached message/rfc822        nested_header_checks
  body lines, boundary lines included          body_checks, the first body_checks_size_limit
                                               bytes of each body part (a line that starts
                                               below the limit is checked whole)
The blank line that ends a header block is structure, not body, and is not checked.

The MIME walker knows multipart/* (by the boundary parameter of Content-Type) and
message/rfc822; a boundary line ends every part nested deeper than its own. Past
mime_nesting_limit levels, or with no usable boundary, content is plain body. Malformed MIME
(no closing boundary, a header block cut short by a non-header line) never fails: what
cannot be headers is body. A logical header keeps at most header_size_limit bytes: its
continuation lines past the limit are discarded from the message too, as Postfix discards the
excess; a single line longer than that is matched on its first header_size_limit bytes.

Actions (header_checks(5)): REJECT [text] and DISCARD [text] decide the message and end the
inspection; PASS [text] ends it and keeps the message; HOLD, WARN, STRIP, REPLACE, PREPEND,
REDIRECT and FILTER log and go on; IGNORE deletes silently; DUNNO and OK do nothing. Only the
last REDIRECT and the last FILTER count. An unknown action, or FILTER without transport:nexthop,
is logged as a warning and otherwise ignored. A table that cannot answer (TableUnavailable)
ends the inspection with `failure` set: the caller defers the message.

Addresses of primary sender and recipient headers are rewritten after header_checks saw the
header (mta.cleanup.headers), when the checks carry a HeaderRewriter; a table that cannot
answer there is a `failure` too.

When nothing after the primary header can match (no mime_header_checks, nested_header_checks
or body_checks, or no MIME structure left that could bring more headers and no body_checks),
the inspector stops looking at lines and only counts bytes: a message is inspected only as far
as a table could still see it.

Security: the content comes from the client and is not trusted; every buffer here is bounded
(one partial line by the larger of the two size limits, one logical header by
header_size_limit, the MIME stack by mime_nesting_limit). Tables are the administrator's.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mta.cleanup.checks import Action, CheckSpecs, ContentChecks
from mta.maps import LookupTable, TableUnavailable
from mta.rewrite import TemporaryFailure

DEFAULT_REJECT_TEXT = "Message content rejected"
DEFAULT_REJECT_STATUS = "5.7.1"
LOGGED_LINE_LIMIT = 200  # characters of a header or body line in a log line, as Postfix's %.200s

_HEADER_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")
_STATUS_PREFIX = re.compile(r"([45])\.\d{1,3}\.\d{1,3}(?:\s+|\Z)")
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_NONPRINTABLE = re.compile(r"[^ -~\x80-\U0010ffff]")
_MIME_HEADER_NAMES = ("content-", "mime-version")
NESTED_MESSAGE_TYPES = ("message/rfc822", "message/global")
CRLF = b"\r\n"


class Block(enum.Enum):
    """Which kind of line the walker expects next."""

    PRIMARY_HEADER = "header"
    PART_HEADER = "mime header"
    NESTED_HEADER = "nested header"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """One logged action: Postfix's `QUEUEID: ACTION: WHERE LINE from CLIENT; ...: TEXT`."""

    action: str
    where: str
    """"header" or "body", as Postfix's log says."""
    line: str
    text: str = ""

    def log_text(self, queue_id: str, context: str) -> str:
        """The log line; context is " from unknown[ADDR]; from=<..> to=<..> proto=.. helo=<..>"."""
        shown = _NONPRINTABLE.sub("?", self.line[:LOGGED_LINE_LIMIT])
        text = f": {self.text}" if self.text else ""
        return f"{queue_id}: {self.action}: {self.where} {shown}{context}{text}"


def log_context(
    client: str, sender: str, recipient: str | None, protocol: str, helo: str | None
) -> str:
    """What Postfix's cleanup logs after the line: who sent it, to whom, how."""
    to = f" to=<{recipient}>" if recipient is not None else ""
    greeting = f" helo=<{helo}>" if helo is not None else ""
    return f" from {client}; from=<{sender}>{to} proto={protocol}{greeting}"


def open_inspector(specs: CheckSpecs) -> ContentInspector:
    """An inspector with the tables of specs; if one cannot be opened, one that defers the
    message at its end (the message is still read: the reply comes after DATA)."""
    try:
        return ContentInspector(specs.open())
    except TableUnavailable as error:
        return ContentInspector(ContentChecks(), failure=str(error))


Edit = tuple[int, int, bytes]
"""Content offsets [start, end) and the bytes that replace them (b"" deletes)."""


@dataclass(frozen=True, slots=True)
class Inspection:
    """What the tables decided about one message."""

    rejected: str | None = None
    """"5.7.1 text" when a REJECT action refuses the message."""
    discarded: bool = False
    hold: bool = False
    redirect: str | None = None
    filter: str | None = None
    failure: str | None = None
    """Why a table could not answer: the message is deferred."""
    edits: tuple[Edit, ...] = ()
    events: tuple[ActionEvent, ...] = ()

    @property
    def reply(self) -> tuple[int, str, str] | None:
        """(code, status, text) of the reply that refuses the message, None to queue it."""
        if self.failure is not None:
            return 451, "4.3.0", "Temporary lookup failure"
        if self.rejected is not None:
            status, _, text = self.rejected.partition(" ")
            return (550 if status.startswith("5") else 450), status, text
        return None

    def apply(self, content: bytes) -> bytes:
        """content with the edits made; content itself when there are none."""
        if not self.edits:
            return content
        parts = []
        position = 0
        for start, end, replacement in self.edits:
            parts.append(content[position:start])
            parts.append(replacement)
            position = end
        parts.append(content[position:])
        return b"".join(parts)


def reject_reason(text: str) -> str:
    """ "STATUS text" of a REJECT: its own status if the text starts with one, else 5.7.1."""
    if _STATUS_PREFIX.match(text):
        return text
    return f"{DEFAULT_REJECT_STATUS} {text or DEFAULT_REJECT_TEXT}"


def decode(line: bytes) -> str:
    # surrogateescape: a pattern in UTF-8 matches UTF-8 text, and other bytes round-trip.
    return line.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class _Header:
    """A logical header being assembled from its physical lines."""

    start: int
    end: int
    lines: list[bytes]
    size: int
    excess_start: int | None = None
    """Where the continuation lines past header_size_limit begin (they are discarded)."""


class ContentInspector:
    """Feed it one message's content; finish() tells what header and body checks decided."""

    def __init__(self, checks: ContentChecks, failure: str | None = None) -> None:
        """failure: a table could not be opened; the inspector only reports it at the end."""
        self._checks = checks
        self._offset = 0
        """Content offset of the first byte not yet fed."""
        self._partial = bytearray()
        self._partial_start = 0
        self._line_bound = max(checks.header_size_limit, checks.body_checks_size_limit) + 2
        self._block = Block.PRIMARY_HEADER
        self._header: _Header | None = None
        self._content_type = ""
        self._boundary: str | None = None
        self._frames: list[str | None] = []
        """Open MIME levels, outermost first: a multipart's boundary, None for message/rfc822."""
        self._part_offset = 0
        self._inspecting = failure is None
        self._rejected: str | None = None
        self._discarded = False
        self._hold = False
        self._redirect: str | None = None
        self._filter: str | None = None
        self._failure = failure
        self._edits: list[Edit] = []
        self._events: list[ActionEvent] = []

    @property
    def inspecting(self) -> bool:
        """False once no table can see anything more of this message (bytes are only counted)."""
        return self._inspecting

    # -- input ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        offset = self._offset
        self._offset += len(data)
        if not self._inspecting:
            return
        position = 0
        while self._inspecting:
            newline = data.find(b"\n", position)
            if newline < 0:
                self._keep_partial(data, position, offset)
                return
            if self._partial:
                self._keep_partial(data[: newline + 1], position, offset)
                line, start = bytes(self._partial), self._partial_start
                self._partial.clear()
            else:
                line, start = data[position : newline + 1], offset + position
            position = newline + 1
            self._line(line, start, offset + position)

    def finish(self) -> Inspection:
        """End of content: check what is still pending and return the decisions."""
        if self._inspecting and self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._line(line, self._partial_start, self._offset)
        if self._inspecting and self._header is not None:
            self._flush_header()
        self._inspecting = False
        return Inspection(
            rejected=self._rejected,
            discarded=self._discarded,
            hold=self._hold,
            redirect=self._redirect,
            filter=self._filter,
            failure=self._failure,
            edits=tuple(self._edits),
            events=tuple(self._events),
        )

    def _keep_partial(self, data: bytes, position: int, offset: int) -> None:
        """Hold the start of an unfinished line, at most _line_bound bytes of it."""
        if not self._partial:
            self._partial_start = offset + position
        room = self._line_bound - len(self._partial)
        if room > 0:
            self._partial += data[position : position + room]

    # -- the MIME walker ---------------------------------------------------------------------

    def _line(self, line: bytes, start: int, end: int) -> None:
        """One physical line (with its line end, possibly cut at _line_bound) at [start, end)."""
        text = line[: self._line_bound].rstrip(b"\r\n")
        if self._block is Block.BODY:
            self._body_line(text, start, end)
            return
        header = self._header
        if header is not None and text[:1] in (b" ", b"\t"):
            self._continue_header(header, text, start, end)
            return
        if header is not None:
            self._flush_header()
            if not self._inspecting:
                return
        if _HEADER_NAME.match(text):
            first = text[: self._checks.header_size_limit]
            self._header = _Header(start, end, [first], len(first))
            return
        self._end_header_block()
        if text and self._inspecting:
            # Not a header: the header block ended without its blank line; this is body (or
            # the first line of a nested message, which the next block decides).
            self._line(line, start, end)

    def _continue_header(self, header: _Header, text: bytes, start: int, end: int) -> None:
        header.end = end
        if header.excess_start is not None:
            return
        size = header.size + 1 + len(text)
        if size > self._checks.header_size_limit:
            header.excess_start = start
            return
        header.lines.append(text)
        header.size = size

    def _end_header_block(self) -> None:
        """After a header block: enter the body, a multipart's preamble or a nested message."""
        content_type, boundary = self._content_type, self._boundary
        self._content_type, self._boundary = "", None
        self._block = Block.BODY
        self._part_offset = 0
        if len(self._frames) < self._checks.mime_nesting_limit:
            if content_type.startswith("multipart/") and boundary:
                self._frames.append(boundary)
            elif content_type in NESTED_MESSAGE_TYPES:
                self._frames.append(None)
                self._block = Block.NESTED_HEADER
        self._stop_when_nothing_can_match()

    def _stop_when_nothing_can_match(self) -> None:
        checks = self._checks
        if checks.body:
            return
        if self._block is Block.BODY and not any(frame is not None for frame in self._frames):
            self._inspecting = False  # no boundary can bring another header block
        elif not (checks.mime_header or checks.nested_header):
            self._inspecting = False

    def _body_line(self, text: bytes, start: int, end: int) -> None:
        boundary_depth = self._boundary_depth(text) if text[:2] == b"--" else None
        if self._checks.body and self._part_offset < self._checks.body_checks_size_limit:
            self._check(self._checks.body, "body", decode(text), start, end)
        self._part_offset += end - start
        if boundary_depth is None or not self._inspecting:
            return
        closing = text[2 + len(encode(self._frames[boundary_depth] or "")) :][:2] == b"--"
        del self._frames[boundary_depth + (0 if closing else 1) :]
        self._part_offset = 0
        if closing:
            self._stop_when_nothing_can_match()
        else:
            self._block = Block.PART_HEADER

    def _boundary_depth(self, text: bytes) -> int | None:
        """The index in _frames of the multipart whose boundary this "--" line is, if any."""
        for depth in range(len(self._frames) - 1, -1, -1):
            boundary = self._frames[depth]
            if boundary is not None and text.startswith(b"--" + encode(boundary)):
                return depth
        return None

    # -- headers -------------------------------------------------------------------------------

    def _flush_header(self) -> None:
        header = self._header
        assert header is not None
        self._header = None
        logical = decode(b"\n".join(header.lines))
        name = logical.split(":", 1)[0].strip().lower()
        if name == "content-type":
            self._note_content_type(logical)
        kept = self._check(self._header_tables(name), "header", logical, header.start, header.end)
        if kept and self._inspecting and self._rewrite_addresses(header, logical):
            return
        if kept and header.excess_start is not None:
            self._edits.append((header.excess_start, header.end, b""))

    def _rewrite_addresses(self, header: _Header, logical: str) -> bool:
        """Rewrite the addresses of a primary sender or recipient header; True when the header
        was replaced (excess continuation lines included). A first line cut at
        header_size_limit is left alone: rewriting it would lose its rest."""
        rewriter = self._checks.header_rewriter
        if (
            rewriter is None
            or self._block is not Block.PRIMARY_HEADER
            or len(header.lines[0]) >= self._checks.header_size_limit
        ):
            return False
        rewritten = rewriter.rewrite(logical)
        if rewritten is None:
            return False
        if isinstance(rewritten, TemporaryFailure):
            self._failure = rewritten.reason
            self._inspecting = False
            return False
        self._edits.append(
            (header.start, header.end, encode(rewritten).replace(b"\n", CRLF) + CRLF)
        )
        return True

    def _header_tables(self, name: str) -> tuple[LookupTable, ...]:
        checks = self._checks
        if name.startswith(_MIME_HEADER_NAMES) or self._block is Block.PART_HEADER:
            return checks.mime_header
        if self._block is Block.NESTED_HEADER:
            return checks.nested_header
        return checks.header

    def _note_content_type(self, logical: str) -> None:
        value = logical.split(":", 1)[1]
        self._content_type = value.split(";", 1)[0].strip().lower()
        match = _BOUNDARY.search(value)
        self._boundary = (match.group(1) or match.group(2)) if match else None

    # -- actions -------------------------------------------------------------------------------

    def _check(
        self, tables: tuple[LookupTable, ...], where: str, line: str, start: int, end: int
    ) -> bool:
        """Look line up and act on the answer; False when the line was removed or replaced."""
        if not tables:
            return True
        try:
            action = self._checks.lookup(tables, line)
        except TableUnavailable as error:
            self._failure = str(error)
            self._inspecting = False
            return True
        if action is None:
            return True
        return self._act(action, where, line, start, end)

    def _act(self, action: Action, where: str, line: str, start: int, end: int) -> bool:
        verb, text = action.verb, action.text

        def log(name: str, detail: str = text) -> None:
            self._events.append(ActionEvent(name, where, line, detail))

        if verb == "REJECT":
            self._rejected = reject_reason(text)
            log("reject", self._rejected)
            self._inspecting = False
        elif verb == "DISCARD":
            self._discarded = True
            log("discard")
            self._inspecting = False
        elif verb == "PASS":
            log("pass")
            self._inspecting = False
        elif verb == "HOLD":
            self._hold = True
            log("hold")
        elif verb == "WARN":
            log("warning")
        elif verb in ("IGNORE", "STRIP"):
            if verb == "STRIP":
                log("strip")
            self._edits.append((start, end, b""))
            return False
        elif verb in ("REPLACE", "PREPEND") and not self._fits(where, text):
            log("warning", f"{verb} needs a {where} line as its text: {text!r}")
        elif verb == "REPLACE":
            log("replace")
            self._edits.append((start, end, encode(text) + CRLF))
            return False
        elif verb == "PREPEND":
            log("prepend")
            self._edits.append((start, start, encode(text) + CRLF))
        elif verb == "REDIRECT" and text:
            log("redirect")
            self._redirect = text
        elif verb == "FILTER" and ":" in text.strip(":"):
            log("filter")
            self._filter = text
        elif verb not in ("DUNNO", "OK"):
            log("warning", f"unknown or incomplete action in {where} checks: {verb} {text}")
        return True

    @staticmethod
    def _fits(where: str, text: str) -> bool:
        """Whether text can stand as a header (for header checks) or a body line."""
        if where == "header":
            return _HEADER_NAME.match(encode(text)) is not None
        return bool(text)
