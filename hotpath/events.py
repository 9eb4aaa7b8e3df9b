"""The vocabulary of the SMTP protocol engine: events, limits and errors.

Both implementations of the engine (`_parser.pyx` and its twin `_parser_py.py`) produce these
very objects, so the two can be compared event for event. Events are small immutable tuples
with named fields; two events are equal when they have the same type and fields.

Standards: RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 3030 (CHUNKING,
BINARYMIME), RFC 3461 (DSN), RFC 4954 (AUTH), RFC 6531 (SMTPUTF8), RFC 2034 (enhanced status
codes), RFC 2920 (PIPELINING), RFC 3207 (STARTTLS), RFC 1985 (ETRN).

Trust: nothing here trusts the peer; every limit the engine enforces is a field of
`ServerLimits` or an argument of the client-side classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self


class Event(tuple[Any, ...]):
    """Base of all engine events: an immutable tuple whose equality includes its type."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self)))

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"{type(self).__name__}({fields})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)


# ---------------------------------------------------------------------------------------------
# Server side: commands the client sent, each awaiting exactly one reply.


class Hello(Event):
    """HELO or EHLO with the client's claimed name (not validated: that is policy)."""

    __slots__ = ()
    _fields = ("verb", "domain")

    def __new__(cls, verb: str, domain: str) -> Hello:
        return tuple.__new__(cls, (verb, domain))

    @property
    def verb(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def domain(self) -> str:
        return self[1]  # type: ignore[no-any-return]


class Mail(Event):
    """MAIL FROM, with the reverse path in internal form ("" is the null sender)."""

    __slots__ = ()
    _fields = ("reverse_path", "size", "body", "smtputf8", "ret", "envid", "auth")

    def __new__(
        cls,
        reverse_path: str,
        size: int | None = None,
        body: str | None = None,
        smtputf8: bool = False,
        ret: str | None = None,
        envid: str | None = None,
        auth: str | None = None,
    ) -> Mail:
        return tuple.__new__(cls, (reverse_path, size, body, smtputf8, ret, envid, auth))

    @property
    def reverse_path(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def size(self) -> int | None:
        """SIZE= as declared (RFC 1870), or None."""
        return self[1]  # type: ignore[no-any-return]

    @property
    def body(self) -> str | None:
        """BODY= upper-cased: "7BIT", "8BITMIME" or "BINARYMIME", or None."""
        return self[2]  # type: ignore[no-any-return]

    @property
    def smtputf8(self) -> bool:
        return self[3]  # type: ignore[no-any-return]

    @property
    def ret(self) -> str | None:
        """DSN RET=: "FULL" or "HDRS", or None (RFC 3461)."""
        return self[4]  # type: ignore[no-any-return]

    @property
    def envid(self) -> str | None:
        """DSN ENVID=, xtext-decoded, or None."""
        return self[5]  # type: ignore[no-any-return]

    @property
    def auth(self) -> str | None:
        """AUTH= mailbox, xtext-decoded ("<>" when the client says it does not know), or None."""
        return self[6]  # type: ignore[no-any-return]


class Rcpt(Event):
    """RCPT TO, with the forward path in internal form."""

    __slots__ = ()
    _fields = ("forward_path", "notify", "orcpt")

    def __new__(
        cls, forward_path: str, notify: tuple[str, ...] | None = None, orcpt: str | None = None
    ) -> Rcpt:
        return tuple.__new__(cls, (forward_path, notify, orcpt))

    @property
    def forward_path(self) -> str:
        return self[0]  # type: ignore[no-any-return]

    @property
    def notify(self) -> tuple[str, ...] | None:
        """DSN NOTIFY= keywords, sorted: ("NEVER",) or a subset of DELAY, FAILURE, SUCCESS."""
        return self[1]  # type: ignore[no-any-return]

    @property
    def orcpt(self) -> str | None:
        """DSN ORCPT= as "addr-type;address" with the address xtext-decoded, or None."""
        return self[2]  # type: ignore[no-any-return]


class Data(Event):
    """DATA. A 354 reply switches the engine to message content."""

    __slots__ = ()

    def __new__(cls) -> Data:
        return tuple.__new__(cls, ())


class Bdat(Event):
    """BDAT: the chunk of `size` octets follows at once, whatever the reply will be."""

    __slots__ = ()
    _fields = ("size", "last")

    def __new__(cls, size: int, last: bool) -> Bdat:
        return tuple.__new__(cls, (size, last))

    @property
    def size(self) -> int:
        return self[0]  # type: ignore[no-any-return]

    @property
    def last(self) -> bool:
        return self[1]  # type: ignore[no-any-return]


class Rset(Event):
    __slots__ = ()

    def __new__(cls) -> Rset:
        return tuple.__new__(cls, ())


class Noop(Event):
    __slots__ = ()

    def __new__(cls) -> Noop:
        return tuple.__new__(cls, ())


class Quit(Event):
    __slots__ = ()

    def __new__(cls) -> Quit:
        return tuple.__new__(cls, ())


class StartTls(Event):
    """STARTTLS. A 220 reply discards any input the client pipelined after it."""

    __slots__ = ()

    def __new__(cls) -> StartTls:
        return tuple.__new__(cls, ())


class _ArgumentCommand(Event):
    __slots__ = ()
    _fields = ("argument",)

    def __new__(cls, argument: str) -> Self:
        return tuple.__new__(cls, (argument,))

    @property
    def argument(self) -> str:
        return self[0]  # type: ignore[no-any-return]


class Vrfy(_ArgumentCommand):
    __slots__ = ()


class Expn(_ArgumentCommand):
    __slots__ = ()


class Help(_ArgumentCommand):
    """HELP, with its (possibly empty) argument."""

    __slots__ = ()


class Etrn(_ArgumentCommand):
    __slots__ = ()


class Auth(Event):
    """AUTH mechanism [initial-response] (RFC 4954). A 334 reply asks for an AuthResponse."""

    __slots__ = ()
    _fields = ("mechanism", "initial_response")

    def __new__(cls, mechanism: str, initial_response: str | None = None) -> Auth:
        return tuple.__new__(cls, (mechanism, initial_response))

    @property
    def mechanism(self) -> str:
        """Upper-cased SASL mechanism name."""
        return self[0]  # type: ignore[no-any-return]

    @property
    def initial_response(self) -> str | None:
        return self[1]  # type: ignore[no-any-return]


class AuthResponse(Event):
    """One line of a SASL exchange, after a 334 reply ("*" means the client cancels)."""

    __slots__ = ()
    _fields = ("line",)

    def __new__(cls, line: str) -> AuthResponse:
        return tuple.__new__(cls, (line,))

    @property
    def line(self) -> str:
        return self[0]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Server side: message content. These need no reply, except EndOfChunk and EndOfData.


class DataChunk(Event):
    """Message content, dot-unstuffed, exactly as received otherwise. Split points vary."""

    __slots__ = ()
    _fields = ("data",)

    def __new__(cls, data: bytes) -> DataChunk:
        return tuple.__new__(cls, (data,))

    @property
    def data(self) -> bytes:
        return self[0]  # type: ignore[no-any-return]


class EndOfChunk(Event):
    """A BDAT chunk without LAST has been read in full; it awaits a reply."""

    __slots__ = ()
    _fields = ("size",)

    def __new__(cls, size: int) -> EndOfChunk:
        return tuple.__new__(cls, (size,))

    @property
    def size(self) -> int:
        return self[0]  # type: ignore[no-any-return]


class EndOfData(Event):
    """The message is complete (CRLF.CRLF after DATA, or the BDAT LAST chunk).

    `size` counts content octets after dot-unstuffing; `long_lines` counts lines longer than
    `ServerLimits.text_line_limit`: they are kept whole, as Postfix keeps them, and the
    client side folds them on the way out. BDAT content is not line-oriented (BINARYMIME), so
    after BDAT LAST long_lines is 0.
    """

    __slots__ = ()
    _fields = ("size", "long_lines")

    def __new__(cls, size: int, long_lines: int) -> EndOfData:
        return tuple.__new__(cls, (size, long_lines))

    @property
    def size(self) -> int:
        return self[0]  # type: ignore[no-any-return]

    @property
    def long_lines(self) -> int:
        return self[1]  # type: ignore[no-any-return]


class ProtocolError(Event):
    """The client broke the protocol or a limit; the reply to send is part of the event.

    With `close`, the session ends after that reply (for example 521 for a bare LF).
    """

    __slots__ = ()
    _fields = ("code", "status", "text", "close")

    def __new__(cls, code: int, status: str, text: str, close: bool = False) -> ProtocolError:
        return tuple.__new__(cls, (code, status, text, close))

    @property
    def code(self) -> int:
        return self[0]  # type: ignore[no-any-return]

    @property
    def status(self) -> str:
        return self[1]  # type: ignore[no-any-return]

    @property
    def text(self) -> str:
        return self[2]  # type: ignore[no-any-return]

    @property
    def close(self) -> bool:
        return self[3]  # type: ignore[no-any-return]


class ConnectionClosed(Event):
    """The client closed its side (receive_data(b"") was called)."""

    __slots__ = ()

    def __new__(cls) -> ConnectionClosed:
        return tuple.__new__(cls, ())


# ---------------------------------------------------------------------------------------------
# Client side.


class Reply(Event):
    """A complete server reply: code, enhanced status (RFC 2034) if present, text lines."""

    __slots__ = ()
    _fields = ("code", "status", "lines")

    def __new__(cls, code: int, status: str | None, lines: tuple[str, ...]) -> Reply:
        return tuple.__new__(cls, (code, status, lines))

    @property
    def code(self) -> int:
        return self[0]  # type: ignore[no-any-return]

    @property
    def status(self) -> str | None:
        return self[1]  # type: ignore[no-any-return]

    @property
    def lines(self) -> tuple[str, ...]:
        """Text of each line, without code, separator or enhanced status."""
        return self[2]  # type: ignore[no-any-return]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


# ---------------------------------------------------------------------------------------------
# Limits and errors.

BARE_NEWLINE_MODES = ("strict", "normal")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Every bound the server engine enforces, with the outcome of going past it.

    - command_line_limit: octets in a command line with its CRLF (RFC 5321: 512). Longer:
      the rest of the line is read and dropped, then "500 5.5.2 Error: line too long".
    - text_line_limit: octets in a content line with its CRLF (RFC 5321 minimum: 1000).
      Longer lines are kept whole and counted in EndOfData.long_lines (Postfix keeps them
      too); memory does not grow with line length because content is streamed.
    - auth_line_limit: octets in a SASL response line. Longer: "500 5.5.6".
    - message_size_limit: content octets (0: no limit). Past it the rest is read and
      dropped, and the message gets "552 5.3.4 Error: message file too big".
    - recipient_limit: accepted RCPTs per transaction (0: no limit). Past it "452 4.5.3".
    - input_buffer_limit: unprocessed octets receive_data will hold; past it, InputOverflow.
    - bare_newline: "strict" rejects a bare LF anywhere with 521 and ends the session;
      "normal" lets a bare LF end a command line and passes it unchanged in content, where it
      never starts a line (only CRLF.CRLF ends DATA, whatever the mode).
    - strict_envelope: require <> around MAIL/RCPT addresses and no space after the colon.
    - helo_required: MAIL before HELO/EHLO gets 503.
    - local_part_limit, domain_limit, path_limit: RFC 5321 4.5.3.1 (64, 255, 256).
    """

    command_line_limit: int = 512
    text_line_limit: int = 1000
    auth_line_limit: int = 12288
    message_size_limit: int = 10240000
    recipient_limit: int = 1000
    input_buffer_limit: int = 262144
    bare_newline: str = "strict"
    strict_envelope: bool = False
    helo_required: bool = False
    local_part_limit: int = 64
    domain_limit: int = 255
    path_limit: int = 256

    def __post_init__(self) -> None:
        if self.bare_newline not in BARE_NEWLINE_MODES:
            raise ValueError(f"bare_newline must be one of {BARE_NEWLINE_MODES}")
        if self.command_line_limit < 64 or self.text_line_limit < 1000:
            raise ValueError("command_line_limit >= 64 and text_line_limit >= 1000 (RFC 5321)")
        if self.input_buffer_limit < max(self.command_line_limit, self.auth_line_limit):
            raise ValueError("input_buffer_limit must hold at least one whole command line")
        if min(self.message_size_limit, self.recipient_limit) < 0:
            raise ValueError("message_size_limit and recipient_limit must be >= 0")


class InputOverflow(Exception):
    """receive_data was given more than input_buffer_limit unprocessed octets.

    The adapter should stop reading until next_event() has drained the engine; if it cannot,
    it sends `reply` and closes.
    """

    reply = b"421 4.7.0 Error: too much pipelined input\r\n"


class ReplySyntaxError(Exception):
    """A server reply that is malformed or over a limit; the session cannot go on."""
