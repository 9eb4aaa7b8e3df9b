"""The tables of the four content inspection classes, and what their answers mean.

    specs = CheckSpecs.from_settings(settings)   # None when no *_checks parameter is set
    checks = specs.open()                        # TableUnavailable if a table cannot open
    checks.lookup(checks.header, "Subject: hello")  -> Action("REJECT", "no thanks") | None

Parameters (defaults as Postfix's, in mta.config.table):
  header_checks ()                         tables for primary message headers
  mime_header_checks ($header_checks)      tables for MIME headers (Content-*, MIME-Version)
  nested_header_checks ($header_checks)    tables for headers of attached messages
  body_checks ()                           tables for body lines
  header_size_limit (102400)               bytes of one logical header kept and matched
  body_checks_size_limit (51200)           bytes of each body part that body_checks sees
  mime_nesting_limit (100)                 multipart and message/rfc822 levels walked

With canonical maps or masquerade_domains in effect for header_sender or header_recipient, the
specs also carry a HeaderRewriter (mta.cleanup.headers) for the primary message headers.

A class with several tables asks them in order; the first that answers decides, as Postfix's
map lists do. The answer is "ACTION [text]", the action case-insensitive. Tables are opened
through mta.maps.open_table, shared by the process, so after the first message opening them
is a dictionary lookup; a table that failed to open is tried again with the next message.
"""

from __future__ import annotations

from dataclasses import dataclass

from mta.cleanup.headers import HeaderRewriter
from mta.config.maincf import Settings
from mta.config.values import number, table_references
from mta.maps import LookupTable, open_table

CHECK_PARAMETERS = ("header_checks", "mime_header_checks", "nested_header_checks", "body_checks")


@dataclass(frozen=True, slots=True)
class Action:
    """One table answer split into its action word (upper case) and the optional text."""

    verb: str
    text: str

    @classmethod
    def parse(cls, answer: str) -> Action:
        verb, _, text = answer.strip().partition(" ")
        return cls(verb.upper(), text.strip())


@dataclass(frozen=True, slots=True)
class ContentChecks:
    """Opened tables of each class, and the bounds of the inspection."""

    header: tuple[LookupTable, ...] = ()
    mime_header: tuple[LookupTable, ...] = ()
    nested_header: tuple[LookupTable, ...] = ()
    body: tuple[LookupTable, ...] = ()
    header_size_limit: int = 102400
    body_checks_size_limit: int = 51200
    mime_nesting_limit: int = 100
    header_rewriter: HeaderRewriter | None = None
    """Rewrites the addresses of primary sender and recipient headers; None: leave them."""

    @property
    def beyond_primary_header(self) -> bool:
        """Whether anything after the primary header can be checked at all."""
        return bool(self.mime_header or self.nested_header or self.body)

    @staticmethod
    def lookup(tables: tuple[LookupTable, ...], key: str) -> Action | None:
        """The first answer of tables for key; raises TableUnavailable."""
        for table in tables:
            answer = table.lookup(key)
            if answer is not None:
                return Action.parse(answer)
        return None


@dataclass(frozen=True, slots=True)
class CheckSpecs:
    """The table specs of each class as main.cf names them, checked but not yet opened."""

    header: tuple[str, ...]
    mime_header: tuple[str, ...]
    nested_header: tuple[str, ...]
    body: tuple[str, ...]
    header_size_limit: int
    body_checks_size_limit: int
    mime_nesting_limit: int
    header_rewriter: HeaderRewriter | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckSpecs | None:
        """The specs in effect; None when no class has a table and no header address is
        rewritten (nothing to inspect)."""
        header, mime_header, nested_header, body = (
            tuple(table_references(settings.get(name), name)) for name in CHECK_PARAMETERS
        )
        header_rewriter = HeaderRewriter.from_settings(settings)
        if not (header or mime_header or nested_header or body or header_rewriter):
            return None
        return cls(
            header=header,
            mime_header=mime_header,
            nested_header=nested_header,
            body=body,
            header_size_limit=number(settings, "header_size_limit", minimum=1),
            body_checks_size_limit=number(settings, "body_checks_size_limit"),
            mime_nesting_limit=number(settings, "mime_nesting_limit", minimum=1),
            header_rewriter=header_rewriter,
        )

    def open(self) -> ContentChecks:
        """The opened tables; raises TableUnavailable (naming the table) if one cannot open."""

        def opened(specs: tuple[str, ...]) -> tuple[LookupTable, ...]:
            return tuple(open_table(spec) for spec in specs)

        return ContentChecks(
            header=opened(self.header),
            mime_header=opened(self.mime_header),
            nested_header=opened(self.nested_header),
            body=opened(self.body),
            header_size_limit=self.header_size_limit,
            body_checks_size_limit=self.body_checks_size_limit,
            mime_nesting_limit=self.mime_nesting_limit,
            header_rewriter=self.header_rewriter,
        )
