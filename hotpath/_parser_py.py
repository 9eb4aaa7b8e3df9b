"""SMTP protocol engine, pure Python: the executable specification of hotpath/_parser.pyx.

Sans-IO: `ServerEngine.receive_data(bytes)` takes what the client sent, `next_event()` hands
out one event at a time (commands, message content, protocol errors), and `reply()` queues
the answer whose code drives the state machine; `data_to_send()` returns the bytes to write.
The engine pauses after every event that needs a reply, so pipelined commands are read in
the state that the previous reply left. No sockets, no policy: what a client may do beyond
the protocol (relaying, limits on errors, banners) is decided by the caller.

Client side: `ReplyParser` assembles server replies (multi-line, RFC 2034 enhanced codes,
bounded); `DotStuffer` turns content into DATA octets: CRLF line ends only, leading dots
doubled, long lines folded, and the CRLF.CRLF terminator.

Standards: RFC 5321, 1870, 6152, 3030, 3461, 4954, 6531, 2034, 2920, 3207, 1985.
Trust: none in the peer. Only CRLF.CRLF ends DATA (SMTP smuggling); xtext that decodes to
control characters is refused (Exim "21Nails"); every buffer has a bound from ServerLimits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from hotpath.events import (
    Auth,
    AuthResponse,
    Bdat,
    ConnectionClosed,
    Data,
    DataChunk,
    EndOfChunk,
    EndOfData,
    Etrn,
    Event,
    Expn,
    Hello,
    Help,
    InputOverflow,
    Mail,
    Noop,
    ProtocolError,
    Quit,
    Rcpt,
    Reply,
    ReplySyntaxError,
    Rset,
    ServerLimits,
    StartTls,
    Vrfy,
)
from hotpath.replies import (
    AFTER_BDAT,
    ALREADY_AUTHENTICATED,
    AUTH_LINE_TOO_LONG,
    BAD_AUTH_PARAMETER,
    BAD_AUTH_RESPONSE,
    BAD_BODY,
    BAD_ENVID,
    BAD_NOTIFY,
    BAD_ORCPT,
    BAD_PARAMETER,
    BAD_RECIPIENT,
    BAD_RET,
    BAD_SENDER,
    BAD_SIZE,
    BAD_SMTPUTF8,
    BARE_LF,
    BDAT_SYNTAX,
    BINARYMIME_NEEDS_BDAT,
    IN_TRANSACTION,
    LINE_TOO_LONG,
    MESSAGE_TOO_BIG,
    NEED_MAIL,
    NEED_RCPT,
    NESTED_MAIL,
    NO_SERVICE,
    SEND_EHLO,
    SEND_HELO,
    SIZE_EXCEEDS_LIMIT,
    SYNTAX_ERROR,
    TLS_ACTIVE,
    TOO_MANY_RECIPIENTS,
    UNICODE_WITHOUT_SMTPUTF8,
    UNKNOWN_COMMAND,
    UTF8_ERROR,
    address_too_long,
    bad_parameter_value,
    duplicate_parameter,
    unsupported_option,
    usage,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DotStuffer",
    "ReplyParser",
    "ServerEngine",
    "decode_xtext",
    "dot_stuff",
    "parse_path",
]

DEFAULT_LIMITS = ServerLimits()

CR = 13
LF = 10
DOT = 46

# Engine states.
GREETING = 0
COMMAND = 1
CONTENT = 2
CHUNK = 3
AUTH_LINE = 4
CLOSED = 5
STATE_NAMES = ("greeting", "command", "content", "chunk", "auth", "closed")

MAX_SIZE_DIGITS = 18
ENVID_LIMIT = 100
ORCPT_LIMIT = 500
AUTH_PARAM_LIMIT = 500
SASL_MECHANISM_LIMIT = 20
REPLY_LINE_LIMIT = 512
LABEL_LIMIT = 63

ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
SASL_MECHANISM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
NOTIFY_KEYWORDS = frozenset(("SUCCESS", "FAILURE", "DELAY"))
BODY_TYPES = frozenset(("7BIT", "8BITMIME", "BINARYMIME"))


def _ascii_upper(text: str) -> str:
    """Upper-case ASCII letters only.

    str.upper() maps some non-ASCII letters to ASCII ones (U+0131 dotless i to "I", U+FB06
    to "ST"), which would let a non-ASCII spelling pass for MAIL, STARTTLS or LAST.
    """
    return text.upper() if text.isascii() else text


# ---------------------------------------------------------------------------------------------
# Text-level helpers shared by the command parsers.


def _decode_line(line: bytes) -> str | ProtocolError:
    """ASCII or strict UTF-8, no control characters (NUL, bare CR, DEL, C1)."""
    for byte in line:
        if byte < 32 or byte == 127:
            return SYNTAX_ERROR
    if line.isascii():
        return line.decode("ascii")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return UTF8_ERROR
    if any(0x80 <= ord(char) <= 0x9F for char in text):
        return UTF8_ERROR
    return text


def decode_xtext(value: str, limit: int) -> str | None:
    """Decode RFC 3461 xtext; None if malformed, over `limit` or decoding to a control char.

    A space (+20) is allowed: quoted local parts in ORCPT have it. Control characters are
    not: decoded values end up in queue records and headers (Exim's "21Nails").

    Raw non-ASCII characters (already validated UTF-8) are let through: the caller allows them
    only in an SMTPUTF8 transaction.
    """
    if len(value) > limit:
        return None
    out: list[str] = []
    index = 0
    length = len(value)
    while index < length:
        char = value[index]
        if char == "+":
            hex_digits = value[index + 1 : index + 3]
            if len(hex_digits) != 2 or any(digit not in "0123456789ABCDEF" for digit in hex_digits):
                return None
            code = int(hex_digits, 16)
            if code < 32 or code > 126:
                return None
            out.append(chr(code))
            index += 3
            continue
        if char == "=" or ord(char) < 33 or ord(char) == 127:
            return None
        out.append(char)
        index += 1
    return "".join(out)


def _is_atext(char: str, utf8: bool) -> bool:
    if char.isascii():
        return char.isalnum() or char in ATEXT_SPECIALS
    return utf8


def _valid_domain(domain: str, utf8: bool) -> bool:
    if domain.startswith("["):
        if not domain.endswith("]"):
            return False
        literal = domain[1:-1]
        try:
            if _ascii_upper(literal[:5]) == "IPV6:":
                if "%" in literal:  # a zone index is not part of RFC 5321 IPv6-addr
                    return False
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            return False
        return True
    if not domain:
        return False
    for label in domain.split("."):
        if not label or len(label.encode("utf-8")) > LABEL_LIMIT:
            return False
        if label[0] == "-" or label[-1] == "-":
            return False
        for char in label:
            if char.isascii():
                if not (char.isalnum() or char == "-"):
                    return False
            elif not utf8:
                return False
    return True


def _unquote_local_part(quoted: str, utf8: bool) -> str | None:
    """Internal form of a quoted local part: quotes removed, quoted pairs resolved."""
    out: list[str] = []
    index = 1
    end = len(quoted) - 1
    while index < end:
        char = quoted[index]
        if char == "\\":
            index += 1
            if index >= end or not (char := quoted[index]).isascii() or not 32 <= ord(char) <= 126:
                return None
        elif char == '"' or (not char.isascii() and not utf8):
            return None
        out.append(char)
        index += 1
    return "".join(out)


def parse_path(
    text: str, utf8: bool, limits: ServerLimits = DEFAULT_LIMITS
) -> tuple[str, str | None] | None:
    """Parse the inside of <...> (no brackets) as an RFC 5321 path.

    Returns (address in internal form, None) or (None-free address, reason) on a length
    problem; None when the syntax is wrong. A source route is accepted and dropped; an
    address without a domain is accepted (Postfix appends $myorigin later); "" is the null
    path, which the caller allows for MAIL only.
    """
    if text.startswith("@"):
        route, colon, text = text.partition(":")
        if not colon:
            return None
        for hop in route.split(","):
            if not hop.startswith("@") or not _valid_domain(hop[1:], utf8):
                return None
    if not text:
        return "", None
    if text.startswith('"'):
        closing = _closing_quote(text)
        if closing < 0:
            return None
        local_raw, rest = text[: closing + 1], text[closing + 1 :]
        if rest and not rest.startswith("@"):
            return None
        local = _unquote_local_part(local_raw, utf8)
        if local is None:
            return None
        domain = rest[1:] if rest else None
    else:
        local_raw, at, domain_part = text.rpartition("@")
        if not at:
            local_raw, domain_part = domain_part, ""
        if not local_raw or not all(char == "." or _is_atext(char, utf8) for char in local_raw):
            return None
        local = local_raw
        domain = domain_part if at else None
    if domain is not None and not _valid_domain(domain, utf8):
        return None
    if len(local_raw.encode("utf-8")) > limits.local_part_limit:
        return local, "local part too long"
    if domain is not None and len(domain.encode("utf-8")) > limits.domain_limit:
        return local, "domain too long"
    mailbox = local_raw if domain is None else f"{local_raw}@{domain}"
    if len(mailbox.encode("utf-8")) + 2 > limits.path_limit:
        return local, "address too long"
    return (local if domain is None else f"{local}@{domain}"), None


def _closing_quote(text: str) -> int:
    """Index of the quote closing the quoted string that text starts with, or -1."""
    index = 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            return index
        index += 1
    return -1


def _split_path_and_parameters(argument: str, strict: bool) -> tuple[str, str] | None:
    """Split 'FROM:' / 'TO:' argument remainder into (path inside <>, parameter text)."""
    if not strict:
        argument = argument.lstrip(" ")
    if argument.startswith("<"):
        index = 1
        in_quotes = False
        while index < len(argument):
            char = argument[index]
            if char == "\\" and in_quotes:
                index += 2
                continue
            if char == '"':
                in_quotes = not in_quotes
            elif char == ">" and not in_quotes:
                rest = argument[index + 1 :]
                if rest and not rest.startswith(" "):
                    return None
                return argument[1:index], rest
            index += 1
        return None
    if strict or not argument:
        return None
    path, _, rest = argument.partition(" ")
    return path, " " + rest if rest else ""


def _parse_parameters(text: str, utf8_allowed: bool) -> dict[str, str | None] | ProtocolError:
    parameters: dict[str, str | None] = {}
    for word in text.split(" "):
        if not word:
            continue
        keyword, equals, value = word.partition("=")
        if (
            not keyword
            or not keyword.isascii()
            or not keyword[0].isalnum()
            or not all(char.isalnum() or char == "-" for char in keyword)
        ):
            return BAD_PARAMETER
        if equals and (not value or "=" in value or (not value.isascii() and not utf8_allowed)):
            return bad_parameter_value(keyword.upper())
        keyword = keyword.upper()
        if keyword in parameters:
            return duplicate_parameter(keyword)
        parameters[keyword] = value if equals else None
    return parameters


def _parse_notify(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    keywords = _ascii_upper(value).split(",")
    if keywords == ["NEVER"]:
        return ("NEVER",)
    if len(set(keywords)) != len(keywords) or not set(keywords) <= NOTIFY_KEYWORDS:
        return None
    return tuple(sorted(keywords))


def _parse_orcpt(value: str | None, utf8: bool) -> str | None:
    if value is None:
        return None
    addr_type, semicolon, encoded = value.partition(";")
    if (
        not semicolon
        or not addr_type
        or not addr_type.isascii()
        or not all(char.isalnum() or char == "-" for char in addr_type)
    ):
        return None
    decoded = decode_xtext(encoded, ORCPT_LIMIT)
    if decoded is None or not decoded or (not decoded.isascii() and not utf8):
        return None
    return f"{addr_type};{decoded}"


def _format_reply(code: int, lines: Sequence[str], status: str | None) -> bytes:
    if not 200 <= code <= 599:
        raise ValueError(f"reply code {code} is not in 200..599")
    if not lines:
        raise ValueError("a reply needs at least one line")
    prefix = f"{status} " if status else ""
    out: list[str] = []
    last = len(lines) - 1
    for index, line in enumerate(lines):
        if any(char in line for char in "\r\n\0"):
            raise ValueError("reply text must not contain CR, LF or NUL")
        formatted = f"{code}{' ' if index == last else '-'}{prefix}{line}\r\n"
        if len(formatted.encode("utf-8")) > REPLY_LINE_LIMIT:
            raise ValueError(f"reply line longer than {REPLY_LINE_LIMIT} octets")
        out.append(formatted)
    return "".join(out).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# The server engine.


class ServerEngine:
    """One SMTP server session's protocol state, fed with bytes, answering with events."""

    _in_mail: bool
    _recipients: int
    _smtputf8: bool
    _body: str | None
    _bdat_transaction: bool
    _chunk_remaining: int
    _chunk_size: int
    _chunk_last: bool
    _chunk_refusal: ProtocolError | None

    def __init__(self, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._strict_bare_lf = limits.bare_newline == "strict"
        self._buffer = bytearray()
        self._output: list[bytes] = []
        self._state = GREETING
        self._awaiting: Event | None = None
        self._eof = False
        self._greeting_refused = False
        self._draining_long_line = False
        self._drained_cr = False
        self.greeted: str | None = None
        self.tls_active = False
        self.authenticated = False
        self.improper_pipelining: str | None = None
        self.discarded_after_starttls = 0
        self._reset_transaction()

    # -- public state ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        return STATE_NAMES[self._state]

    @property
    def closed(self) -> bool:
        return self._state == CLOSED

    @property
    def awaiting_reply(self) -> bool:
        return self._awaiting is not None or self._state == GREETING

    @property
    def in_transaction(self) -> bool:
        return self._in_mail

    @property
    def recipient_count(self) -> int:
        return self._recipients

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the client; b"" means the client closed its side."""
        if not data:
            self._eof = True
            return
        if self._state == CLOSED:
            return
        if len(self._buffer) + len(data) > self.limits.input_buffer_limit:
            raise InputOverflow(f"more than {self.limits.input_buffer_limit} octets unprocessed")
        self._buffer += data

    def next_event(self) -> Event | None:
        """The next event, or None when more input (or a reply) is needed first."""
        state = self._state
        if state in (CLOSED, GREETING) or self._awaiting is not None:
            return None
        if state == CONTENT:
            return self._content_event()
        if state == CHUNK:
            return self._chunk_event()
        line = self._take_line(
            self.limits.auth_line_limit if state == AUTH_LINE else self.limits.command_line_limit
        )
        if line is None:
            return self._closed_event() if self._eof else None
        if isinstance(line, ProtocolError):
            if line is LINE_TOO_LONG and state == AUTH_LINE:
                self._state = COMMAND
                line = AUTH_LINE_TOO_LONG
            return self._awaits(line)
        if state == AUTH_LINE:
            return self._auth_response(line)
        event = self._command(line)
        if event is None or type(event) is Bdat:
            # BDAT octets follow at once: the reply comes when the chunk has been read.
            return event if event is not None else self.next_event()
        return self._awaits(event)

    def _awaits(self, event: Event) -> Event:
        self._awaiting = event
        return event

    def _closed_event(self) -> Event:
        self._state = CLOSED
        self._buffer.clear()
        return ConnectionClosed()

    def _take_line(self, limit: int) -> bytes | ProtocolError | None:
        """Cut one line (without its line end) from the buffer, within `limit` octets."""
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            if self._draining_long_line or len(buffer) >= limit:
                # Over the limit before its end: drop it as it comes, remembering only
                # whether the last octet dropped was a CR.
                self._draining_long_line = True
                if buffer:
                    self._drained_cr = buffer[-1] == CR
                buffer.clear()
            return None
        crlf = buffer[end - 1] == CR if end else self._drained_cr and self._draining_long_line
        if not crlf and self._strict_bare_lf:
            buffer.clear()
            return BARE_LF
        if self._draining_long_line or end + 1 > limit:
            self._draining_long_line = False
            del buffer[: end + 1]
            return LINE_TOO_LONG
        line = bytes(buffer[: end - 1 if crlf else end])
        del buffer[: end + 1]
        return line

    # -- commands --------------------------------------------------------------------------

    def _command(self, line: bytes) -> Event | None:
        text = _decode_line(line)
        if isinstance(text, ProtocolError):
            return text
        verb, _, argument = text.partition(" ")
        verb = _ascii_upper(verb)
        row = COMMAND_TABLE.get(verb)
        if row is None:
            return UNKNOWN_COMMAND
        handler, last_in_group = row
        if last_in_group and self._buffer and self.improper_pipelining is None:
            self.improper_pipelining = verb
        if self._greeting_refused and verb != "QUIT":
            return NO_SERVICE
        return handler(self, verb, argument)

    def _hello(self, verb: str, argument: str) -> Event:
        domain = argument.strip(" ")
        if not domain or not domain.isascii():
            return usage(f"{verb} hostname")
        return Hello(verb, domain)

    def _mail(self, _verb: str, argument: str) -> Event:
        if self._in_mail:
            return NESTED_MAIL
        if self.limits.helo_required and self.greeted is None:
            return SEND_HELO
        if _ascii_upper(argument[:5]) != "FROM:":
            return usage("MAIL FROM:<address>")
        split = _split_path_and_parameters(argument[5:], self.limits.strict_envelope)
        if split is None:
            return usage("MAIL FROM:<address>")
        path_text, parameter_text = split
        parameters = _parse_parameters(parameter_text, utf8_allowed=True)
        if isinstance(parameters, ProtocolError):
            return parameters
        smtputf8 = "SMTPUTF8" in parameters
        if smtputf8 and parameters["SMTPUTF8"] is not None:
            return BAD_SMTPUTF8
        if not smtputf8 and not (path_text.isascii() and parameter_text.isascii()):
            return UNICODE_WITHOUT_SMTPUTF8
        parsed = parse_path(path_text, smtputf8, self.limits)
        if parsed is None:
            return BAD_SENDER
        address, too_long = parsed
        if too_long:
            return address_too_long(BAD_SENDER, too_long)
        size: int | None = None
        body: str | None = None
        ret: str | None = None
        envid: str | None = None
        auth: str | None = None
        for keyword, value in parameters.items():
            if keyword == "SIZE":
                if (
                    value is None
                    or not value.isascii()
                    or not value.isdigit()
                    or len(value) > MAX_SIZE_DIGITS
                ):
                    return BAD_SIZE
                size = int(value)
                limit = self.limits.message_size_limit
                if limit and size > limit:
                    return SIZE_EXCEEDS_LIMIT
            elif keyword == "BODY":
                body = _ascii_upper(value or "")
                if body not in BODY_TYPES:
                    return BAD_BODY
            elif keyword == "RET":
                ret = _ascii_upper(value or "")
                if ret not in ("FULL", "HDRS"):
                    return BAD_RET
            elif keyword == "ENVID":
                envid = decode_xtext(value or "", ENVID_LIMIT)
                if not envid or (not envid.isascii() and not smtputf8):
                    return BAD_ENVID
            elif keyword == "AUTH":
                auth = decode_xtext(value or "", AUTH_PARAM_LIMIT)
                if not auth:
                    return BAD_AUTH_PARAMETER
            elif keyword != "SMTPUTF8":
                return unsupported_option(keyword)
        return Mail(address, size, body, smtputf8, ret, envid, auth)

    def _rcpt(self, _verb: str, argument: str) -> Event:
        if not self._in_mail:
            return NEED_MAIL
        if self._bdat_transaction:
            return AFTER_BDAT
        if _ascii_upper(argument[:3]) != "TO:":
            return usage("RCPT TO:<address>")
        split = _split_path_and_parameters(argument[3:], self.limits.strict_envelope)
        if split is None:
            return usage("RCPT TO:<address>")
        path_text, parameter_text = split
        utf8 = self._smtputf8
        if not utf8 and not argument.isascii():
            return UNICODE_WITHOUT_SMTPUTF8
        parameters = _parse_parameters(parameter_text, utf8_allowed=utf8)
        if isinstance(parameters, ProtocolError):
            return parameters
        parsed = parse_path(path_text, utf8, self.limits)
        if parsed is None or not parsed[0]:
            return BAD_RECIPIENT
        address, too_long = parsed
        if too_long:
            return address_too_long(BAD_RECIPIENT, too_long)
        notify: tuple[str, ...] | None = None
        orcpt: str | None = None
        for keyword, value in parameters.items():
            if keyword == "NOTIFY":
                notify = _parse_notify(value)
                if notify is None:
                    return BAD_NOTIFY
            elif keyword == "ORCPT":
                orcpt = _parse_orcpt(value, utf8)
                if orcpt is None:
                    return BAD_ORCPT
            else:
                return unsupported_option(keyword)
        limit = self.limits.recipient_limit
        if limit and self._recipients >= limit:
            return TOO_MANY_RECIPIENTS
        return Rcpt(address, notify, orcpt)

    def _data(self, _verb: str, argument: str) -> Event:
        if argument.strip(" "):
            return usage("DATA")
        if self._bdat_transaction:
            return AFTER_BDAT
        if not self._in_mail or not self._recipients:
            return NEED_RCPT
        if self._body == "BINARYMIME":
            return BINARYMIME_NEEDS_BDAT
        return Data()

    def _bdat(self, _verb: str, argument: str) -> Event | None:
        words = argument.split(" ")
        if (
            not 1 <= len(words) <= 2
            or not words[0].isdigit()
            or not words[0].isascii()
            or len(words[0]) > MAX_SIZE_DIGITS
            or (len(words) == 2 and _ascii_upper(words[1]) != "LAST")
        ):
            self._buffer.clear()
            return BDAT_SYNTAX
        size = int(words[0])
        last = len(words) == 2
        refused = not self._in_mail or not self._recipients
        if not refused and not self._bdat_transaction:
            self._reset_content()
            self._bdat_transaction = True
        self._state = CHUNK
        self._chunk_remaining = size
        self._chunk_size = size
        self._chunk_last = last
        if refused:
            # RFC 3030: a refused BDAT's octets are still read, then answered.
            self._chunk_refusal = NEED_RCPT
            return None
        self._chunk_refusal = None
        return Bdat(size, last)

    def _rset(self, _verb: str, argument: str) -> Event:
        return usage("RSET") if argument.strip(" ") else Rset()

    def _noop(self, _verb: str, _argument: str) -> Event:
        return Noop()

    def _quit(self, _verb: str, _argument: str) -> Event:
        return Quit()

    def _starttls(self, _verb: str, argument: str) -> Event:
        if argument.strip(" "):
            return usage("STARTTLS")
        if self.tls_active:
            return TLS_ACTIVE
        if self.greeted != "EHLO":
            return SEND_EHLO
        if self._in_mail:
            return IN_TRANSACTION
        return StartTls()

    def _auth(self, _verb: str, argument: str) -> Event:
        if self.greeted != "EHLO":
            return SEND_EHLO
        if self.authenticated:
            return ALREADY_AUTHENTICATED
        if self._in_mail:
            return IN_TRANSACTION
        words = argument.split(" ")
        mechanism = _ascii_upper(words[0])
        if (
            not 1 <= len(words) <= 2
            or not mechanism
            or len(mechanism) > SASL_MECHANISM_LIMIT
            or not set(mechanism) <= SASL_MECHANISM_CHARS
            or (len(words) == 2 and not words[1])
        ):
            return usage("AUTH mechanism")
        return Auth(mechanism, words[1] if len(words) == 2 else None)

    def _argument_command(self, verb: str, argument: str, event: type[Vrfy | Expn | Etrn]) -> Event:
        argument = argument.strip(" ")
        if not argument:
            return usage(f"{verb} {'domain' if event is Etrn else 'address'}")
        return event(argument)

    def _vrfy(self, verb: str, argument: str) -> Event:
        return self._argument_command(verb, argument, Vrfy)

    def _expn(self, verb: str, argument: str) -> Event:
        return self._argument_command(verb, argument, Expn)

    def _etrn(self, verb: str, argument: str) -> Event:
        if self.greeted is None:
            return SEND_HELO
        if self._in_mail:
            return IN_TRANSACTION
        return self._argument_command(verb, argument, Etrn)

    def _help(self, _verb: str, argument: str) -> Event:
        return Help(argument.strip(" "))

    def _auth_response(self, line: bytes) -> Event:
        self._state = COMMAND
        if not line.isascii() or any(byte < 32 or byte == 127 for byte in line):
            return self._awaits(BAD_AUTH_RESPONSE)
        return self._awaits(AuthResponse(line.decode("ascii")))

    # -- content: DATA ---------------------------------------------------------------------

    def _reset_content(self) -> None:
        self._content_size = 0
        self._content_too_big = False
        self._long_lines = 0
        self._line_length = 0
        self._at_line_start = True
        self._previous_cr = False

    def _keep(self, pieces: list[bytes], piece: bytes) -> None:
        """Account for content octets and keep those within message_size_limit."""
        limit = self.limits.message_size_limit
        size = self._content_size + len(piece)
        if limit and size > limit:
            if not self._content_too_big:
                kept = limit - self._content_size
                if kept > 0:
                    pieces.append(piece[:kept])
                self._content_too_big = True
        else:
            pieces.append(piece)
        self._content_size = size

    def _content_event(self) -> Event | None:
        """Dot-unstuffed content up to what can be decided, or the end of the message.

        Only CR LF "." CR LF ends a message: the CR LF belongs to the content, so the engine
        holds back nothing but a line-initial prefix of ".\\r\\n" at the end of the buffer.
        """
        buffer = self._buffer
        size = len(buffer)
        pieces: list[bytes] = []
        position = 0
        text_limit = self.limits.text_line_limit
        while position < size:
            if self._at_line_start:
                if buffer[position] == DOT:
                    ahead = buffer[position : position + 3]
                    if ahead == b".\r\n":
                        if pieces:
                            break
                        del buffer[: position + 3]
                        return self._end_of_data()
                    if len(ahead) < 3 and b".\r\n".startswith(ahead):
                        break
                    position += 1
                    self._line_length = 1
                    self._previous_cr = False
                self._at_line_start = False
            newline = buffer.find(b"\n", position)
            if newline < 0:
                self._line_length += size - position
                self._previous_cr = buffer[size - 1] == CR
                self._keep(pieces, bytes(buffer[position:size]))
                position = size
                break
            crlf = buffer[newline - 1] == CR if newline > position else self._previous_cr
            if not crlf and self._strict_bare_lf:
                if newline > position:
                    self._keep(pieces, bytes(buffer[position:newline]))
                    del buffer[:newline]
                    self._previous_cr = False
                    if pieces:
                        return self._content_chunk(pieces)
                    # Nothing kept (past message_size_limit): the bare LF is decidable now.
                buffer.clear()
                return self._awaits(BARE_LF)
            self._line_length += newline + 1 - position
            self._keep(pieces, bytes(buffer[position : newline + 1]))
            position = newline + 1
            self._previous_cr = False
            if crlf:
                if self._line_length > text_limit:
                    self._long_lines += 1
                self._line_length = 0
                self._at_line_start = True
        del buffer[:position]
        chunk = self._content_chunk(pieces)
        if chunk is None and self._eof:
            return self._closed_event()
        return chunk

    def _content_chunk(self, pieces: list[bytes]) -> Event | None:
        if not pieces:
            return None
        return DataChunk(b"".join(pieces))

    def _end_of_data(self) -> Event:
        self._state = COMMAND
        if self._content_too_big:
            return self._awaits(MESSAGE_TOO_BIG)
        return self._awaits(EndOfData(self._content_size, self._long_lines))

    # -- content: BDAT ---------------------------------------------------------------------

    def _chunk_event(self) -> Event | None:
        remaining = self._chunk_remaining
        if remaining:
            buffer = self._buffer
            if not buffer:
                return self._closed_event() if self._eof else None
            taken = min(remaining, len(buffer))
            piece = bytes(buffer[:taken])
            del buffer[:taken]
            self._chunk_remaining = remaining - taken
            if self._chunk_refusal is None:
                pieces: list[bytes] = []
                self._keep(pieces, piece)
                if pieces:
                    return DataChunk(pieces[0])
            if self._chunk_remaining:
                return None
        self._state = COMMAND
        if self._chunk_refusal is not None:
            return self._awaits(self._chunk_refusal)
        if self._content_too_big:
            return self._awaits(MESSAGE_TOO_BIG)
        if self._chunk_last:
            return self._awaits(EndOfData(self._content_size, 0))
        return self._awaits(EndOfChunk(self._chunk_size))

    # -- output ----------------------------------------------------------------------------

    def reply(self, code: int, text: str | Sequence[str], status: str | None = None) -> None:
        """Queue the reply to the event awaiting one (or the greeting) and move state."""
        if self._state == CLOSED:
            raise RuntimeError("the session is closed")
        event = self._awaiting
        if event is None and self._state != GREETING:
            raise RuntimeError("no event is awaiting a reply")
        lines = [text] if isinstance(text, str) else list(text)
        self._output.append(_format_reply(code, lines, status))
        self._awaiting = None
        self._transition(event, code)

    def _transition(self, event: Event | None, code: int) -> None:
        positive = 200 <= code < 300
        if code == 421:
            self._close()
            return
        if event is None:
            if code == 220:
                self._state = COMMAND
            else:
                self._greeting_refused = True
                self._state = COMMAND
            return
        handler = TRANSITIONS.get(type(event))
        if handler is not None:
            handler(self, event, code, positive)

    def _after_hello(self, event: Event, _code: int, positive: bool) -> None:
        if positive:
            assert isinstance(event, Hello)
            self.greeted = event.verb
            self._reset_transaction()

    def _after_mail(self, event: Event, _code: int, positive: bool) -> None:
        if positive:
            assert isinstance(event, Mail)
            self._in_mail = True
            self._smtputf8 = event.smtputf8
            self._body = event.body

    def _after_rcpt(self, _event: Event, _code: int, positive: bool) -> None:
        if positive:
            self._recipients += 1

    def _after_data(self, _event: Event, code: int, _positive: bool) -> None:
        if code == 354:
            self._state = CONTENT
            self._reset_content()

    def _after_chunk(self, _event: Event, _code: int, positive: bool) -> None:
        if not positive:
            self._reset_transaction()

    def _after_message(self, _event: Event, _code: int, _positive: bool) -> None:
        self._reset_transaction()

    def _after_rset(self, _event: Event, _code: int, positive: bool) -> None:
        if positive:
            self._reset_transaction()

    def _after_quit(self, _event: Event, _code: int, _positive: bool) -> None:
        self._close()

    def _after_starttls(self, _event: Event, code: int, _positive: bool) -> None:
        if code == 220:
            # Anything pipelined after STARTTLS came in clear text: it must not be read as if
            # it came over TLS (CVE-2011-0411).
            self.discarded_after_starttls += len(self._buffer)
            self._buffer.clear()
            self.tls_active = True
            self.greeted = None
            self._reset_transaction()

    def _after_auth(self, _event: Event, code: int, _positive: bool) -> None:
        if code == 334:
            self._state = AUTH_LINE
        elif code == 235:
            self.authenticated = True

    def _after_error(self, event: Event, _code: int, _positive: bool) -> None:
        assert isinstance(event, ProtocolError)
        if event.close:
            self._close()
        elif event in (MESSAGE_TOO_BIG, BARE_LF):
            self._reset_transaction()

    def _close(self) -> None:
        self._state = CLOSED
        self._buffer.clear()

    def _reset_transaction(self) -> None:
        self._in_mail = False
        self._recipients = 0
        self._smtputf8 = False
        self._body = None
        self._bdat_transaction = False
        self._chunk_remaining = 0
        self._chunk_size = 0
        self._chunk_last = False
        self._chunk_refusal = None
        self._reset_content()

    def data_to_send(self) -> bytes:
        """All replies queued since the last call, as one write."""
        if not self._output:
            return b""
        data = b"".join(self._output)
        self._output.clear()
        return data


CommandHandler = Callable[[ServerEngine, str, str], Event | None]

# verb -> (handler, must be the last command of a PIPELINING group: RFC 2920 3.1, RFC 3207,
# RFC 4954)
COMMAND_TABLE: dict[str, tuple[CommandHandler, bool]] = {
    "EHLO": (ServerEngine._hello, True),
    "HELO": (ServerEngine._hello, True),
    "MAIL": (ServerEngine._mail, False),
    "RCPT": (ServerEngine._rcpt, False),
    "DATA": (ServerEngine._data, True),
    "BDAT": (ServerEngine._bdat, False),
    "RSET": (ServerEngine._rset, False),
    "NOOP": (ServerEngine._noop, True),
    "QUIT": (ServerEngine._quit, True),
    "VRFY": (ServerEngine._vrfy, True),
    "EXPN": (ServerEngine._expn, True),
    "HELP": (ServerEngine._help, True),
    "STARTTLS": (ServerEngine._starttls, True),
    "AUTH": (ServerEngine._auth, True),
    "ETRN": (ServerEngine._etrn, True),
}

Transition = Callable[[ServerEngine, Event, int, bool], None]

TRANSITIONS: dict[type[Event], Transition] = {
    Hello: ServerEngine._after_hello,
    Mail: ServerEngine._after_mail,
    Rcpt: ServerEngine._after_rcpt,
    Data: ServerEngine._after_data,
    EndOfChunk: ServerEngine._after_chunk,
    EndOfData: ServerEngine._after_message,
    Rset: ServerEngine._after_rset,
    Quit: ServerEngine._after_quit,
    StartTls: ServerEngine._after_starttls,
    Auth: ServerEngine._after_auth,
    AuthResponse: ServerEngine._after_auth,
    ProtocolError: ServerEngine._after_error,
}


# ---------------------------------------------------------------------------------------------
# Client side.

ENHANCED_STATUS_MAX = 3 + 1 + 3 + 1 + 3


def _split_enhanced_status(text: str, code: int) -> tuple[str | None, str]:
    """("x.y.z", rest) when text starts with an RFC 2034 status of the code's class."""
    head, _, rest = text.partition(" ")
    parts = head.split(".")
    if (
        len(head) > ENHANCED_STATUS_MAX
        or len(parts) != 3
        or parts[0] != str(code // 100)
        or not all(part.isascii() and part.isdigit() and len(part) <= 3 for part in parts[1:])
    ):
        return None, text
    return head, rest


class ReplyParser:
    """Assembles server replies from bytes; bounded in line length and lines per reply."""

    def __init__(self, line_limit: int = 2048, max_lines: int = 100) -> None:
        self.line_limit = line_limit
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._code = 0

    def receive_data(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > self.line_limit and self._buffer.find(b"\n", 0, self.line_limit) < 0:
            raise ReplySyntaxError(f"reply line longer than {self.line_limit} octets")

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None until more bytes arrive."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) >= self.line_limit:
                    raise ReplySyntaxError(f"reply line longer than {self.line_limit} octets")
                return None
            if end + 1 > self.line_limit:
                raise ReplySyntaxError(f"reply line longer than {self.line_limit} octets")
            raw = bytes(buffer[: end - 1 if end and buffer[end - 1] == CR else end])
            del buffer[: end + 1]
            code_text = raw[:3]
            separator = raw[3:4]
            if (
                len(code_text) != 3
                or not code_text.isdigit()
                or not b"2" <= code_text[:1] <= b"5"
                or separator not in (b"", b" ", b"-")
            ):
                raise ReplySyntaxError(f"malformed reply line {raw[:40]!r}")
            code = int(code_text)
            if self._lines and code != self._code:
                raise ReplySyntaxError("reply lines with different codes")
            self._code = code
            self._lines.append(raw[4:].decode("utf-8", "replace"))
            if separator == b"-":
                if len(self._lines) >= self.max_lines:
                    raise ReplySyntaxError(f"reply longer than {self.max_lines} lines")
                continue
            return self._complete()

    def _complete(self) -> Reply:
        code = self._code
        status, first = _split_enhanced_status(self._lines[0], code)
        lines = [first]
        for line in self._lines[1:]:
            line_status, rest = _split_enhanced_status(line, code)
            lines.append(rest if line_status == status and status else line)
        self._lines = []
        return Reply(code, status, tuple(lines))


class DotStuffer:
    """Turns message content into DATA octets, chunk by chunk (RFC 5321 4.5.2).

    Every line end becomes CRLF (a bare CR or LF included: we never send either); a line that
    starts with "." gets another; a line longer than `line_limit` octets is broken by
    inserting CRLF SPACE, as Postfix's smtp_line_length_limit does (0: never).
    `finish()` ends the last line and adds the "." CRLF terminator.
    """

    def __init__(self, line_limit: int = 998) -> None:
        self.line_limit = line_limit
        self._at_line_start = True
        self._pending_cr = False
        self._line_length = 0

    @property
    def line_limit(self) -> int:
        return self._line_limit

    @line_limit.setter
    def line_limit(self, value: int) -> None:
        # A limit of 1 leaves no room after the inserted SPACE: folding would never end.
        if value and value < 2:
            raise ValueError("line_limit must be 0 or at least 2")
        self._line_limit = value

    def feed(self, data: bytes) -> bytes:
        if self._pending_cr:
            data = b"\r" + data
        self._pending_cr = data.endswith(b"\r")
        if self._pending_cr:
            data = data[:-1]
        if not data:
            return b""
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        out: list[bytes] = []
        last = len(lines) - 1
        for index, line in enumerate(lines):
            self._append_line_part(out, line)
            if index != last:
                out.append(b"\r\n")
                self._at_line_start = True
                self._line_length = 0
        return b"".join(out)

    def _append_line_part(self, out: list[bytes], part: bytes) -> None:
        if not part:
            return
        if self._at_line_start and part[:1] == b".":
            part = b"." + part
        self._at_line_start = False
        limit = self._line_limit
        if limit:
            while self._line_length + len(part) > limit:
                room = limit - self._line_length
                out.append(part[:room])
                out.append(b"\r\n ")
                part = part[room:]
                self._line_length = 1
        out.append(part)
        self._line_length += len(part)

    def finish(self) -> bytes:
        ending = b"\r\n" if self._pending_cr or not self._at_line_start else b""
        self._pending_cr = False
        self._at_line_start = True
        self._line_length = 0
        return ending + b".\r\n"


def dot_stuff(content: bytes, line_limit: int = 998) -> bytes:
    """The DATA octets for a whole message, terminator included."""
    stuffer = DotStuffer(line_limit)
    return stuffer.feed(content) + stuffer.finish()
