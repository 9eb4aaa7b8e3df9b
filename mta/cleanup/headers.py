"""Address rewriting in primary message headers, as Postfix's cleanup(8) does it.

    rewriter = HeaderRewriter.from_settings(settings)     # None: nothing would change
    rewriter.rewrite("From: Joe <joe@host.example.com>")
        -> "From: Joe <joe@example.com>" | None (unchanged) | TemporaryFailure

Sender headers (SENDER_HEADERS) get the header_sender class of canonical_maps,
sender_canonical_maps and masquerade_domains; recipient headers (RECIPIENT_HEADERS) the
header_recipient class of canonical_maps, recipient_canonical_maps and masquerade_domains
(AddressRewriter.header_address). Only the addr-spec of each mailbox is replaced, in place:
display names, comments, groups (`undisclosed-recipients:;`), folding and spacing stay as
written, and a header none of whose addresses changes is not touched at all.

The value is scanned once by a small RFC 5322 tokenizer that knows quoted strings, nested
comments, <angle addresses> and group syntax. An addr-spec that holds a quoted string or a
comment (a quoted local part, for one) is left alone, as is anything past
MAX_HEADER_ADDRESSES addresses in one header (the header itself is bounded by
header_size_limit). A rewritten address whose local part needs
quoting is quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mta.config.maincf import Settings
from mta.rewrite import AddressRewriter, TemporaryFailure

SENDER_HEADERS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "errors-to",
        "resent-from",
        "resent-sender",
        "resent-reply-to",
        "return-receipt-to",
        "disposition-notification-to",
    }
)
RECIPIENT_HEADERS = frozenset(
    {"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc", "apparently-to"}
)
MAX_HEADER_ADDRESSES = 1000
"""Addresses rewritten in one header; the rest are kept as written."""

_DOT_ATOM_LOCAL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)


def address_spans(value: str, limit: int = MAX_HEADER_ADDRESSES) -> list[tuple[int, int]]:
    """[start, end) of each plain addr-spec in an address-list header value, at most limit.

    An angle address gives what is between its brackets; a mailbox without brackets gives
    its text without surrounding white space and comments. Addresses holding a quote or a
    comment are left out; so are group names and empty list members."""
    spans: list[tuple[int, int]] = []
    member_start: int | None = None
    member_end = 0
    plain = True
    angle_start: int | None = None
    seen_angle = False
    frozen = False
    """A comment followed the member's first word: more words make it no plain address."""
    comment_depth = 0
    quoted = False
    escaped = False

    def close_member() -> None:
        if member_start is not None and not seen_angle and plain:
            spans.append((member_start, member_end))

    for index, char in enumerate(value):
        if len(spans) >= limit:
            break
        if escaped:
            escaped = False
            continue
        if char == "\\" and (quoted or comment_depth):
            escaped = True
            continue
        if quoted:
            if char == '"':
                quoted = False
            continue
        if comment_depth:
            if char == "(":
                comment_depth += 1
            elif char == ")":
                comment_depth -= 1
            continue
        if angle_start is not None:
            if char == ">":
                inner = value[angle_start:index]
                stripped = inner.strip()
                if stripped and '"' not in inner and "(" not in inner:
                    offset = angle_start + inner.index(stripped)
                    spans.append((offset, offset + len(stripped)))
                angle_start = None
            elif char in '"(':
                # a quote or a comment inside the brackets: skip this address
                angle_start = None
                quoted = char == '"'
                comment_depth = 1 if char == "(" else 0
            continue
        if char == "<":
            angle_start = index + 1
            seen_angle = True
        elif char in ",;:":
            if char != ":":
                close_member()
            member_start, plain, seen_angle, frozen = None, True, False, False
        elif char == '"':
            quoted = True
            plain = False
        elif char == "(":
            comment_depth = 1
            frozen = member_start is not None
        elif not char.isspace():
            if member_start is None:
                member_start = index
            plain = plain and not frozen
            member_end = index + 1
    if len(spans) < limit and angle_start is None and not quoted and not comment_depth:
        close_member()
    return spans


def quote_local_part(address: str) -> str:
    """address with its local part quoted when it is not a dot-atom (RFC 5322)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or _DOT_ATOM_LOCAL.fullmatch(local):
        return address
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"@{domain}'


@dataclass(frozen=True, slots=True)
class HeaderRewriter:
    """Rewrites the addresses of sender and recipient headers with an AddressRewriter."""

    rewriter: AddressRewriter

    @classmethod
    def from_settings(cls, settings: Settings) -> HeaderRewriter | None:
        """None when no canonical map or masquerading applies to header addresses."""
        rewriter = AddressRewriter.from_settings(settings)
        return cls(rewriter) if rewriter.changes_headers else None

    def rewrite(self, header: str) -> str | TemporaryFailure | None:
        """The logical header (lines joined by LF) with its addresses rewritten; None when it
        is not an address header or no address changes."""
        name, colon, value = header.partition(":")
        lower = name.strip().lower()
        if not colon or (lower not in SENDER_HEADERS and lower not in RECIPIENT_HEADERS):
            return None
        recipient = lower in RECIPIENT_HEADERS
        pieces: list[str] = []
        position = 0
        for start, end in address_spans(value):
            address = value[start:end]
            rewritten = self.rewriter.header_address(address, recipient)
            if isinstance(rewritten, TemporaryFailure):
                return rewritten
            if rewritten != address:
                pieces.append(value[position:start])
                pieces.append(quote_local_part(rewritten))
                position = end
        if not pieces:
            return None
        pieces.append(value[position:])
        return f"{name}:{''.join(pieces)}"
