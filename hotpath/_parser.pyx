# cython: language_level=3
"""SMTP protocol engine, compiled: the accelerated twin of hotpath/_parser_py.py.

Same names, same events (the very classes of hotpath.events), same replies, same exceptions
at the same moments and the same state as the pure-Python specification, for any input split
any way; only the points where content is cut into DataChunk events may differ (they do not
today). The speed comes from scanning octets with C pointers: input waits in a C buffer with
a read offset, command lines are checked and split without slicing, content is dot-unstuffed
and measured with memchr and memcpy into one DataChunk per read, and verbs and state
transitions go through small tables and a switch.

Sans-IO: `ServerEngine.receive_data(bytes)`, `next_event()`, `reply()`, `data_to_send()`.
Client side: `ReplyParser` assembles server replies; `DotStuffer` and `dot_stuff` produce
DATA octets (CRLF line ends, leading dots doubled, long lines folded, the terminator).

Standards: RFC 5321, 1870, 6152, 3030, 3461, 4954, 6531, 2034, 2920, 3207, 1985.
Trust: none in the peer. Only CRLF.CRLF ends DATA (SMTP smuggling); xtext that decodes to
control characters is refused (Exim "21Nails"); every buffer has a bound from ServerLimits.
"""

import ipaddress

cimport cython

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_DecodeLatin1, PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy, memmove

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

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    const Py_ssize_t PY_SSIZE_T_MIN
    bint PyUnicode_IS_ASCII(object text)

cdef enum:
    CR = 13
    LF = 10
    DOT = 46
    SPACE = 32

# Engine states, in the twin's order (STATE_NAMES indexes them).
cdef enum:
    GREETING = 0
    COMMAND = 1
    CONTENT = 2
    CHUNK = 3
    AUTH_LINE = 4
    CLOSED = 5

STATE_NAMES = ("greeting", "command", "content", "chunk", "auth", "closed")

cdef enum:
    MAX_SIZE_DIGITS = 18
    ENVID_LIMIT = 100
    ORCPT_LIMIT = 500
    AUTH_PARAM_LIMIT = 500
    SASL_MECHANISM_LIMIT = 20
    REPLY_LINE_LIMIT = 512
    LABEL_LIMIT = 63
    ENHANCED_STATUS_MAX = 11

# What _take_line found.
cdef enum:
    LINE_NONE = 0
    LINE_READY = 1
    LINE_BARE_LF = 2
    LINE_TOO_LONG_FOUND = 3

NOTIFY_KEYWORDS = frozenset(("SUCCESS", "FAILURE", "DELAY"))
BODY_TYPES = frozenset(("7BIT", "8BITMIME", "BINARYMIME"))


# Events are built with tuple.__new__, as their own __new__ does, without running a Python
# frame per event: the hot paths make one event per command or read.
cdef object _new_event = tuple.__new__

# Events without fields are immutable and compared by type: one of each serves every session.
DATA_EVENT = Data()
RSET_EVENT = Rset()
NOOP_EVENT = Noop()
QUIT_EVENT = Quit()
STARTTLS_EVENT = StartTls()


# ---------------------------------------------------------------------------------------------
# Character classes (code points; the twin's str.isascii()/isalnum() on single characters).


cdef inline bint _ascii_alnum(Py_UCS4 point) noexcept:
    return (48 <= point <= 57) or (65 <= point <= 90) or (97 <= point <= 122)


cdef inline bint _atext_special(Py_UCS4 point) noexcept:
    # "!#$%&'*+-/=?^_`{|}~"
    return (
        point == 33 or (35 <= point <= 39) or point == 42 or point == 43 or point == 45
        or point == 47 or point == 61 or point == 63 or (94 <= point <= 96) or (123 <= point <= 126)
    )


cdef inline bint _is_atext(Py_UCS4 point, bint utf8) noexcept:
    if point < 128:
        return _ascii_alnum(point) or _atext_special(point)
    return utf8


cdef Py_ssize_t _utf8_length(str text) except -1:
    """len(text.encode("utf-8")), raising as encode does for lone surrogates."""
    if PyUnicode_IS_ASCII(text):
        return len(text)
    return len(text.encode("utf-8"))


cdef Py_ssize_t _clamp(object value):
    """A limit as a C size; the engine's octet counts never reach the clamped bounds."""
    if value > PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    if value < PY_SSIZE_T_MIN:
        return PY_SSIZE_T_MIN
    return value


# ---------------------------------------------------------------------------------------------
# Text-level helpers shared by the command parsers.


def decode_xtext(str value not None, limit):
    """Decode RFC 3461 xtext; None if malformed, over `limit` or decoding to a control point.

    Raw non-ASCII characters (already validated UTF-8) are let through: the caller allows them
    only in an SMTPUTF8 transaction.
    """
    if len(value) > limit:
        return None
    return _decode_xtext(value)


cdef inline int _hex_digit(Py_UCS4 point) noexcept:
    if 48 <= point <= 57:
        return <int>point - 48
    if 65 <= point <= 70:
        return <int>point - 55
    return -1


cdef object _decode_xtext(str value):
    cdef Py_ssize_t length = len(value)
    cdef Py_ssize_t index
    cdef Py_UCS4 point
    cdef int high, low, code
    cdef bint plain = True
    # Most values have no "+": check them in place and return them as they are.
    for index in range(length):
        point = value[index]
        if point == 43:
            plain = False
        elif point == 61 or point < 33 or point == 127:
            return None
    if plain:
        return value
    out = []
    index = 0
    while index < length:
        point = value[index]
        if point == 43:
            if index + 2 >= length:
                return None
            high = _hex_digit(value[index + 1])
            low = _hex_digit(value[index + 2])
            if high < 0 or low < 0:
                return None
            code = high * 16 + low
            if code < 32 or code > 126:
                return None
            out.append(chr(code))
            index += 3
            continue
        out.append(value[index : index + 1])
        index += 1
    return "".join(out)


cdef bint _valid_label_chars(str domain, Py_ssize_t start, Py_ssize_t end, bint utf8):
    cdef Py_UCS4 point
    for point in domain[start:end]:
        if point < 128:
            if not (_ascii_alnum(point) or point == 45):
                return False
        elif not utf8:
            return False
    return True


cdef bint _valid_domain(str domain, bint utf8) except -1:
    cdef Py_ssize_t length = len(domain)
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t end
    cdef Py_ssize_t label_octets
    cdef bint ascii = PyUnicode_IS_ASCII(domain)
    if length and domain[0] == 91:
        if domain[length - 1] != 93:
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
    if not length:
        return False
    while True:
        end = start
        while end < length and domain[end] != 46:
            end += 1
        if end == start:
            return False
        label_octets = end - start if ascii else _utf8_length(domain[start:end])
        if label_octets > LABEL_LIMIT:
            return False
        if domain[start] == 45 or domain[end - 1] == 45:
            return False
        if not _valid_label_chars(domain, start, end, utf8):
            return False
        if end == length:
            return True
        start = end + 1


cdef object _unquote_local_part(str quoted, bint utf8):
    """Internal form of a quoted local part: quotes removed, quoted pairs resolved."""
    cdef Py_ssize_t index = 1
    cdef Py_ssize_t end = len(quoted) - 1
    cdef Py_UCS4 point
    out = []
    while index < end:
        point = quoted[index]
        if point == 92:
            index += 1
            if index >= end:
                return None
            point = quoted[index]
            if not 32 <= point <= 126:
                return None
        elif point == 34 or (point >= 128 and not utf8):
            return None
        out.append(quoted[index : index + 1])
        index += 1
    return "".join(out)


cdef Py_ssize_t _closing_quote(str text):
    """Index of the quote closing the quoted string that text starts with, or -1."""
    cdef Py_ssize_t index = 1
    cdef Py_ssize_t length = len(text)
    cdef Py_UCS4 point
    while index < length:
        point = text[index]
        if point == 92:
            index += 2
            continue
        if point == 34:
            return index
        index += 1
    return -1


def parse_path(str text not None, utf8, limits=DEFAULT_LIMITS):
    """Parse the inside of <...> (no brackets) as an RFC 5321 path.

    Returns (address in internal form, None) or (None-free address, reason) on a length
    problem; None when the syntax is wrong. A source route is accepted and dropped; an
    address without a domain is accepted (Postfix appends $myorigin later); "" is the null
    path, which the caller allows for MAIL only.
    """
    return _parse_path(
        text,
        bool(utf8),
        _clamp(limits.local_part_limit),
        _clamp(limits.domain_limit),
        _clamp(limits.path_limit),
    )


cdef object _parse_path(
    str text, bint utf8, Py_ssize_t local_part_limit, Py_ssize_t domain_limit,
    Py_ssize_t path_limit,
):
    cdef Py_ssize_t length = len(text)
    cdef Py_ssize_t index, closing, at
    cdef Py_ssize_t local_octets, domain_octets
    cdef object domain
    cdef str local_raw, local, route
    cdef Py_UCS4 point
    if length and text[0] == 64:
        colon = text.find(":")
        if colon < 0:
            return None
        route = text[:colon]
        text = text[colon + 1 :]
        length = len(text)
        for hop in route.split(","):
            if not hop.startswith("@") or not _valid_domain(hop[1:], utf8):
                return None
    if not length:
        return "", None
    if text[0] == 34:
        closing = _closing_quote(text)
        if closing < 0:
            return None
        if closing + 1 < length and text[closing + 1] != 64:
            return None
        local_raw = text[: closing + 1]
        local = _unquote_local_part(local_raw, utf8)
        if local is None:
            return None
        domain = text[closing + 2 :] if closing + 1 < length else None
    else:
        at = text.rfind("@")
        if at < 0:
            local_raw = text
            domain = None
        else:
            local_raw = text[:at]
            domain = text[at + 1 :]
        if not local_raw:
            return None
        for index in range(len(local_raw)):
            point = local_raw[index]
            if not (point == 46 or _is_atext(point, utf8)):
                return None
        local = local_raw
    if domain is not None and not _valid_domain(domain, utf8):
        return None
    local_octets = _utf8_length(local_raw)
    if local_octets > local_part_limit:
        return local, "local part too long"
    if domain is not None:
        domain_octets = _utf8_length(domain)
        if domain_octets > domain_limit:
            return local, "domain too long"
        if local_octets + 1 + domain_octets + 2 > path_limit:
            return local, "address too long"
        return f"{local}@{domain}", None
    if local_octets + 2 > path_limit:
        return local, "address too long"
    return local, None


cdef object _split_path_and_parameters(str argument, bint strict):
    """Split 'FROM:' / 'TO:' argument remainder into (path inside <>, parameter text)."""
    cdef Py_ssize_t length = len(argument)
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t index
    cdef bint in_quotes = False
    cdef Py_UCS4 point
    if not strict:
        while start < length and argument[start] == 32:
            start += 1
    if start < length and argument[start] == 60:
        index = start + 1
        while index < length:
            point = argument[index]
            if point == 92 and in_quotes:
                index += 2
                continue
            if point == 34:
                in_quotes = not in_quotes
            elif point == 62 and not in_quotes:
                if index + 1 < length and argument[index + 1] != 32:
                    return None
                return argument[start + 1 : index], argument[index + 1 :]
            index += 1
        return None
    if strict or start == length:
        return None
    index = argument.find(" ", start)
    if index < 0:
        return argument[start:], ""
    if index + 1 == length:
        return argument[start:index], ""
    return argument[start:index], argument[index:]


cdef bint _valid_keyword(str keyword) noexcept:
    cdef Py_UCS4 point
    if not keyword or not _ascii_alnum(keyword[0]):
        return False
    for point in keyword:
        if not (_ascii_alnum(point) or point == 45):
            return False
    return True


cdef dict _NO_PARAMETERS = {}


cdef object _parse_parameters(str text, bint utf8_allowed):
    """Parameters as {KEYWORD: value or None} in order (never mutated), or a ProtocolError."""
    if not text:
        return _NO_PARAMETERS
    cdef dict parameters = {}
    cdef str word, keyword
    cdef object value
    cdef Py_ssize_t equals
    for word in text.split(" "):
        if not word:
            continue
        equals = word.find("=")
        keyword = word if equals < 0 else word[:equals]
        if not _valid_keyword(keyword):
            return BAD_PARAMETER
        value = None
        if equals >= 0:
            value = word[equals + 1 :]
            if not value or "=" in value or (not PyUnicode_IS_ASCII(value) and not utf8_allowed):
                return bad_parameter_value(keyword.upper())
        keyword = keyword.upper()
        if keyword in parameters:
            return duplicate_parameter(keyword)
        parameters[keyword] = value
    return parameters


cdef object _parse_notify(object value):
    if value is None:
        return None
    keywords = _ascii_upper(value).split(",")
    if keywords == ["NEVER"]:
        return ("NEVER",)
    unique = set(keywords)
    if len(unique) != len(keywords) or not unique <= NOTIFY_KEYWORDS:
        return None
    return tuple(sorted(keywords))


cdef object _parse_orcpt(object value, bint utf8):
    if value is None:
        return None
    cdef str text = value
    cdef Py_ssize_t semicolon = text.find(";")
    cdef Py_ssize_t index
    cdef Py_UCS4 point
    if semicolon <= 0:
        return None
    for index in range(semicolon):
        point = text[index]
        if not (_ascii_alnum(point) or point == 45):
            return None
    encoded = text[semicolon + 1 :]
    if len(encoded) > ORCPT_LIMIT:
        return None
    decoded = _decode_xtext(encoded)
    if not decoded or (not PyUnicode_IS_ASCII(decoded) and not utf8):
        return None
    return f"{text[:semicolon]};{decoded}"


cdef bint _ascii_prefix_upper_equals(str text, str word) noexcept:
    """text[:len(word)].upper() == word, for an upper-case ASCII word and ASCII text."""
    cdef Py_ssize_t length = len(word)
    cdef Py_ssize_t index
    cdef Py_UCS4 point
    if len(text) < length:
        return False
    for index in range(length):
        point = text[index]
        if 97 <= point <= 122:
            point = <Py_UCS4>(<int>point - 32)
        if point != word[index]:
            return False
    return True


cdef bint _prefix_upper_equals(str text, str word):
    # Only ASCII letters are folded: str.upper() maps some non-ASCII letters to ASCII ones
    # (U+0131 -> "I"), which would let a non-ASCII spelling pass for MAIL. Words are ASCII.
    cdef str prefix = text[: len(word)]
    return PyUnicode_IS_ASCII(prefix) and _ascii_prefix_upper_equals(prefix, word)


cdef str _ascii_upper(str text):
    return text.upper() if PyUnicode_IS_ASCII(text) else text


cdef bint _blank(str text) noexcept:
    """not text.strip(" ")"""
    cdef Py_UCS4 point
    for point in text:
        if point != 32:
            return False
    return True


cdef bytes _format_reply(object code, list lines, object status):
    if not 200 <= code <= 599:
        raise ValueError(f"reply code {code} is not in 200..599")
    if not lines:
        raise ValueError("a reply needs at least one line")
    prefix = f"{status} " if status else ""
    cdef Py_ssize_t last = len(lines) - 1
    cdef Py_ssize_t index
    out = []
    for index in range(last + 1):
        line = lines[index]
        if "\r" in line or "\n" in line or "\0" in line:
            raise ValueError("reply text must not contain CR, LF or NUL")
        formatted = f"{code}{' ' if index == last else '-'}{prefix}{line}\r\n"
        if _utf8_length(formatted) > REPLY_LINE_LIMIT:
            raise ValueError(f"reply line longer than {REPLY_LINE_LIMIT} octets")
        out.append(formatted)
    return "".join(out).encode("utf-8")


cdef inline Py_ssize_t _plain_line_length(object line):
    """The length of an ASCII str without CR, LF or NUL; -1 for any other line."""
    if type(line) is not str or not PyUnicode_IS_ASCII(line):
        return -1
    cdef Py_ssize_t length = len(<str>line)
    cdef const char* data = <const char*>PyUnicode_1BYTE_DATA(line)
    if memchr(data, CR, length) or memchr(data, LF, length) or memchr(data, 0, length):
        return -1
    return length


cdef object _format_plain_reply(object code, object text, object status):
    """_format_reply without Python formatting for the usual reply: an int code, ASCII str
    text or lines and status. None when anything is unusual: _format_reply then decides."""
    cdef Py_ssize_t count
    cdef Py_ssize_t index
    cdef Py_ssize_t octets
    cdef Py_ssize_t prefix_length = 0
    cdef Py_ssize_t total = 0
    cdef int number
    cdef char* out
    cdef object lines
    if type(code) is not int or not 200 <= code <= 599:
        return None
    number = code
    if status is not None:
        if type(status) is not str or not PyUnicode_IS_ASCII(status):
            return None
        prefix_length = len(<str>status)
        if prefix_length:
            prefix_length += 1
    if type(text) is str:
        lines = None
        count = 1
    elif type(text) is tuple or type(text) is list:
        lines = text
        count = len(text)
        if not count:
            return None
    else:
        return None
    for index in range(count):
        octets = _plain_line_length(text if lines is None else lines[index])
        if octets < 0:
            return None
        octets += 6 + prefix_length
        if octets > REPLY_LINE_LIMIT:
            return None
        total += octets
    result = PyBytes_FromStringAndSize(NULL, total)
    out = PyBytes_AS_STRING(result)
    for index in range(count):
        line = text if lines is None else lines[index]
        out[0] = <char>(48 + number // 100)
        out[1] = <char>(48 + number // 10 % 10)
        out[2] = <char>(48 + number % 10)
        out[3] = SPACE if index == count - 1 else 45
        out += 4
        if prefix_length:
            memcpy(out, PyUnicode_1BYTE_DATA(status), prefix_length - 1)
            out[prefix_length - 1] = SPACE
            out += prefix_length
        octets = len(<str>line)
        memcpy(out, PyUnicode_1BYTE_DATA(line), octets)
        out[octets] = CR
        out[octets + 1] = LF
        out += octets + 2
    return result


# ---------------------------------------------------------------------------------------------
# MAIL and RCPT on plain ASCII octets: the usual "FROM:<local@domain> KEY=value..." parsed in C.
# These succeed only where the str-based parsers above would return the very same event, and
# give up (None) on anything else, which then goes to those parsers for the exact outcome.

cdef enum Parameter:
    PARAMETER_SIZE = 1
    PARAMETER_BODY = 2
    PARAMETER_RET = 4
    PARAMETER_ENVID = 8
    PARAMETER_AUTH = 16
    PARAMETER_SMTPUTF8 = 32
    PARAMETER_NOTIFY = 64

cdef enum Notify:
    NOTIFY_DELAY = 1
    NOTIFY_FAILURE = 2
    NOTIFY_SUCCESS = 4
    NOTIFY_NEVER = 8

# NOTIFY= keyword sets as the twin returns them (sorted), indexed by Notify bits.
cdef tuple _notify_tuples():
    tuples = []
    for mask in range(8):
        names = [name for bit, name in ((1, "DELAY"), (2, "FAILURE"), (4, "SUCCESS")) if mask & bit]
        tuples.append(tuple(names))
    tuples.append(("NEVER",))
    return tuple(tuples)


cdef tuple NOTIFY_TUPLES = _notify_tuples()


cdef inline unsigned char _upper(unsigned char octet) noexcept:
    return octet - 32 if 97 <= octet <= 122 else octet


cdef bint _octets_are(const unsigned char* octets, Py_ssize_t length, const char* word) noexcept:
    """Whether the octets, upper-cased, spell `word` (upper case, NUL-terminated)."""
    cdef Py_ssize_t index
    for index in range(length):
        if word[index] == 0 or _upper(octets[index]) != <unsigned char>word[index]:
            return False
    return word[length] == 0


cdef bint _plain_domain(const unsigned char* domain, Py_ssize_t length) noexcept:
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t end
    cdef unsigned char octet
    if not length:
        return False
    while True:
        end = start
        while end < length and domain[end] != DOT:
            octet = domain[end]
            if not (_ascii_alnum(octet) or octet == 45):
                return False
            end += 1
        if end == start or end - start > LABEL_LIMIT:
            return False
        if domain[start] == 45 or domain[end - 1] == 45:
            return False
        if end == length:
            return True
        start = end + 1


cdef object _plain_path(const unsigned char* path, Py_ssize_t length, Limits* limit, bint null_ok):
    """local@domain as parse_path returns it, when it needs no unquoting nor route; else None."""
    cdef Py_ssize_t at = length - 1
    cdef Py_ssize_t index
    cdef unsigned char octet
    if not length:
        return "" if null_ok else None
    while at >= 0 and path[at] != 64:
        at -= 1
    if at <= 0:
        return None
    for index in range(at):
        octet = path[index]
        if not (octet == DOT or (octet < 128 and (_ascii_alnum(octet) or _atext_special(octet)))):
            return None
    if not _plain_domain(path + at + 1, length - at - 1):
        return None
    if at > limit.local_part or length - at - 1 > limit.domain or length + 2 > limit.path:
        return None
    return PyUnicode_DecodeLatin1(<const char*>path, length, NULL)


cdef Py_ssize_t _plain_path_end(
    const unsigned char* argument, Py_ssize_t length, Py_ssize_t start, bint strict
) noexcept:
    """Index of the ">" closing "<path>" at `start` (after spaces unless strict), or -1."""
    cdef Py_ssize_t index
    if not strict:
        while start < length and argument[start] == SPACE:
            start += 1
    if start >= length or argument[start] != 60:
        return -1
    index = start + 1
    while index < length:
        if argument[index] == 62:
            if index + 1 < length and argument[index + 1] != SPACE:
                return -1
            return index
        if argument[index] == 34:
            return -1
        index += 1
    return -1


cdef Py_ssize_t _plain_digits(const unsigned char* value, Py_ssize_t length) noexcept:
    """The number written in ASCII digits (at most MAX_SIZE_DIGITS), or -1."""
    cdef Py_ssize_t number = 0
    cdef Py_ssize_t index
    if not 0 < length <= MAX_SIZE_DIGITS:
        return -1
    for index in range(length):
        if not 48 <= value[index] <= 57:
            return -1
        number = number * 10 + (value[index] - 48)
    return number


cdef int _notify_bits(const unsigned char* value, Py_ssize_t length) noexcept:
    """NOTIFY= keywords as Notify bits; -1 if the twin would refuse or we cannot tell."""
    cdef int bits = 0
    cdef int bit
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t end
    while True:
        end = start
        while end < length and value[end] != 44:
            end += 1
        if _octets_are(value + start, end - start, "SUCCESS"):
            bit = NOTIFY_SUCCESS
        elif _octets_are(value + start, end - start, "FAILURE"):
            bit = NOTIFY_FAILURE
        elif _octets_are(value + start, end - start, "DELAY"):
            bit = NOTIFY_DELAY
        elif _octets_are(value + start, end - start, "NEVER"):
            bit = NOTIFY_NEVER
        else:
            return -1
        if bits & bit:
            return -1
        bits |= bit
        if end >= length:
            break
        start = end + 1
    if bits & NOTIFY_NEVER and bits != NOTIFY_NEVER:
        return -1
    return bits


cdef object _plain_mail(const unsigned char* argument, Py_ssize_t length, Limits* limit):
    cdef Py_ssize_t path_end
    cdef Py_ssize_t position
    cdef Py_ssize_t word_end
    cdef Py_ssize_t keyword_length
    cdef Py_ssize_t value_length
    cdef Py_ssize_t number
    cdef const unsigned char* word
    cdef const unsigned char* value
    cdef int seen = 0
    cdef int parameter
    cdef Py_ssize_t start = 5
    cdef bint smtputf8 = False
    if length < 5 or not _octets_are(argument, 5, "FROM:"):
        return None
    path_end = _plain_path_end(argument, length, 5, limit.strict_envelope)
    if path_end < 0:
        return None
    size = body = ret = envid = auth = None
    position = path_end + 1
    while position < length:
        if argument[position] == SPACE:
            position += 1
            continue
        word = argument + position
        word_end = position
        while word_end < length and argument[word_end] != SPACE:
            word_end += 1
        value = <const unsigned char*>memchr(word, 61, word_end - position)
        keyword_length = (value - word) if value != NULL else word_end - position
        value_length = -1
        if value != NULL:
            value += 1
            value_length = word_end - position - keyword_length - 1
            if not value_length or memchr(value, 61, value_length) != NULL:
                return None
        position = word_end
        if _octets_are(word, keyword_length, "SIZE"):
            parameter = PARAMETER_SIZE
            number = _plain_digits(value, value_length)
            if number < 0 or (limit.message_size and number > limit.message_size):
                return None
            size = number
        elif _octets_are(word, keyword_length, "BODY"):
            parameter = PARAMETER_BODY
            if value_length < 0:
                return None
            if _octets_are(value, value_length, "8BITMIME"):
                body = "8BITMIME"
            elif _octets_are(value, value_length, "7BIT"):
                body = "7BIT"
            elif _octets_are(value, value_length, "BINARYMIME"):
                body = "BINARYMIME"
            else:
                return None
        elif _octets_are(word, keyword_length, "RET"):
            parameter = PARAMETER_RET
            if value_length < 0:
                return None
            if _octets_are(value, value_length, "FULL"):
                ret = "FULL"
            elif _octets_are(value, value_length, "HDRS"):
                ret = "HDRS"
            else:
                return None
        elif _octets_are(word, keyword_length, "SMTPUTF8"):
            parameter = PARAMETER_SMTPUTF8
            if value_length >= 0:
                return None
            smtputf8 = True
        elif _octets_are(word, keyword_length, "ENVID"):
            parameter = PARAMETER_ENVID
            if not 0 < value_length <= ENVID_LIMIT:
                return None
            envid = _decode_xtext(PyUnicode_DecodeLatin1(<const char*>value, value_length, NULL))
            if not envid:
                return None
        elif _octets_are(word, keyword_length, "AUTH"):
            parameter = PARAMETER_AUTH
            if not 0 < value_length <= AUTH_PARAM_LIMIT:
                return None
            auth = _decode_xtext(PyUnicode_DecodeLatin1(<const char*>value, value_length, NULL))
            if not auth:
                return None
        else:
            return None
        if seen & parameter:
            return None
        seen |= parameter
    while argument[start] != 60:
        start += 1
    address = _plain_path(argument + start + 1, path_end - start - 1, limit, True)
    if address is None:
        return None
    return _new_event(Mail, (address, size, body, smtputf8, ret, envid, auth))


cdef object _plain_rcpt(const unsigned char* argument, Py_ssize_t length, Limits* limit):
    cdef Py_ssize_t path_end
    cdef Py_ssize_t position
    cdef Py_ssize_t word_end
    cdef Py_ssize_t start = 3
    cdef const unsigned char* word
    cdef int notify_bits
    if length < 3 or not _octets_are(argument, 3, "TO:"):
        return None
    path_end = _plain_path_end(argument, length, 3, limit.strict_envelope)
    if path_end < 0:
        return None
    notify = None
    position = path_end + 1
    while position < length:
        if argument[position] == SPACE:
            position += 1
            continue
        word = argument + position
        word_end = position
        while word_end < length and argument[word_end] != SPACE:
            word_end += 1
        # Only NOTIFY=, once: ORCPT= and anything else go to the str-based parser.
        if notify is not None or word_end - position < 8 or not _octets_are(word, 7, "NOTIFY="):
            return None
        if memchr(word + 7, 61, word_end - position - 7) != NULL:
            return None
        notify_bits = _notify_bits(word + 7, word_end - position - 7)
        if notify_bits < 0:
            return None
        notify = NOTIFY_TUPLES[notify_bits]
        position = word_end
    while argument[start] != 60:
        start += 1
    address = _plain_path(argument + start + 1, path_end - start - 1, limit, False)
    if address is None:
        return None
    return _new_event(Rcpt, (address, notify, None))


# ---------------------------------------------------------------------------------------------
# The server engine.

# Verbs, with the flag "must be the last command of a PIPELINING group" (RFC 2920 3.1,
# RFC 3207, RFC 4954).
cdef enum Verb:
    VERB_NONE = -1
    VERB_EHLO = 0
    VERB_HELO
    VERB_MAIL
    VERB_RCPT
    VERB_DATA
    VERB_BDAT
    VERB_RSET
    VERB_NOOP
    VERB_QUIT
    VERB_VRFY
    VERB_EXPN
    VERB_HELP
    VERB_STARTTLS
    VERB_AUTH
    VERB_ETRN
    VERB_COUNT

COMMAND_TABLE = (
    ("EHLO", True),
    ("HELO", True),
    ("MAIL", False),
    ("RCPT", False),
    ("DATA", True),
    ("BDAT", False),
    ("RSET", False),
    ("NOOP", True),
    ("QUIT", True),
    ("VRFY", True),
    ("EXPN", True),
    ("HELP", True),
    ("STARTTLS", True),
    ("AUTH", True),
    ("ETRN", True),
)
cdef tuple VERB_NAMES = tuple(name for name, _ in COMMAND_TABLE)
cdef dict VERB_CODES = {name: code for code, (name, _) in enumerate(COMMAND_TABLE)}
cdef bint LAST_IN_GROUP[15]
cdef uint64_t VERB_KEYS[15]


cdef uint64_t _verb_key(const unsigned char* verb, Py_ssize_t length) noexcept:
    """The upper-cased ASCII verb packed into an integer (0 if it cannot be a verb)."""
    cdef uint64_t key = 0
    cdef Py_ssize_t index
    cdef unsigned char point
    if length < 1 or length > 8:
        return 0
    for index in range(length):
        point = verb[index]
        if 97 <= point <= 122:
            point -= 32
        key = (key << 8) | point
    return key


cdef void _init_verb_table():
    cdef int code
    cdef bytes name
    for code in range(VERB_COUNT):
        name = VERB_NAMES[code].encode("ascii")
        VERB_KEYS[code] = _verb_key(name, len(name))
        LAST_IN_GROUP[code] = COMMAND_TABLE[code][1]


_init_verb_table()


cdef int _ascii_verb_code(const unsigned char* verb, Py_ssize_t length) noexcept:
    cdef uint64_t key = _verb_key(verb, length)
    cdef int code
    if key:
        for code in range(VERB_COUNT):
            if VERB_KEYS[code] == key:
                return code
    return VERB_NONE


# What a reply to each awaited event does (the twin's TRANSITIONS table).
cdef enum After:
    AFTER_NOTHING = 0
    AFTER_HELLO
    AFTER_MAIL
    AFTER_RCPT
    AFTER_DATA
    AFTER_CHUNK
    AFTER_MESSAGE
    AFTER_RSET
    AFTER_QUIT
    AFTER_STARTTLS
    AFTER_AUTH
    AFTER_ERROR

cdef dict TRANSITIONS = {
    Hello: AFTER_HELLO,
    Mail: AFTER_MAIL,
    Rcpt: AFTER_RCPT,
    Data: AFTER_DATA,
    EndOfChunk: AFTER_CHUNK,
    EndOfData: AFTER_MESSAGE,
    Rset: AFTER_RSET,
    Quit: AFTER_QUIT,
    StartTls: AFTER_STARTTLS,
    Auth: AFTER_AUTH,
    AuthResponse: AFTER_AUTH,
    ProtocolError: AFTER_ERROR,
}


# ServerLimits as C sizes, read once per ServerLimits object (they are frozen).
cdef struct Limits:
    Py_ssize_t command_line
    Py_ssize_t text_line
    Py_ssize_t auth_line
    Py_ssize_t message_size
    Py_ssize_t recipient
    Py_ssize_t input_buffer
    bint strict_envelope
    bint helo_required
    Py_ssize_t local_part
    Py_ssize_t domain
    Py_ssize_t path


cdef Limits _read_limits(object limits) except *:
    cdef Limits values
    values.command_line = _clamp(limits.command_line_limit)
    values.text_line = _clamp(limits.text_line_limit)
    values.auth_line = _clamp(limits.auth_line_limit)
    values.message_size = _clamp(limits.message_size_limit)
    values.recipient = _clamp(limits.recipient_limit)
    values.input_buffer = _clamp(limits.input_buffer_limit)
    values.strict_envelope = limits.strict_envelope
    values.helo_required = limits.helo_required
    values.local_part = _clamp(limits.local_part_limit)
    values.domain = _clamp(limits.domain_limit)
    values.path = _clamp(limits.path_limit)
    return values


cdef Limits _cached_limits
cdef object _cached_limits_of = None


# Sessions are not pickled; the twin's would be, but nothing relies on it.
@cython.auto_pickle(False)
cdef class ServerEngine:
    """One SMTP server session's protocol state, fed with bytes, answering with events."""

    cdef object _limits
    cdef Limits _limit
    cdef bint _strict_bare_lf

    # Unprocessed input is _input[_start:_end].
    cdef unsigned char* _input
    cdef Py_ssize_t _start
    cdef Py_ssize_t _end
    cdef Py_ssize_t _capacity
    # Where _take_line left the line it cut (still in _input until the next receive_data).
    cdef Py_ssize_t _line_start
    cdef Py_ssize_t _line_length_found
    # Dot-unstuffed content is gathered here before it becomes one DataChunk.
    cdef unsigned char* _scratch
    cdef Py_ssize_t _scratch_capacity

    cdef list _output
    cdef int _state
    cdef object _awaiting
    cdef bint _eof
    cdef bint _greeting_refused
    cdef bint _draining_long_line
    cdef bint _drained_cr
    cdef public object greeted
    cdef public bint tls_active
    cdef public bint authenticated
    cdef public object improper_pipelining
    cdef public Py_ssize_t discarded_after_starttls

    cdef bint _in_mail
    cdef Py_ssize_t _recipients
    cdef bint _smtputf8
    cdef bint _binarymime
    cdef bint _bdat_transaction
    cdef Py_ssize_t _chunk_remaining
    cdef Py_ssize_t _chunk_size
    cdef bint _chunk_last
    cdef object _chunk_refusal

    cdef Py_ssize_t _content_size
    cdef bint _content_too_big
    cdef Py_ssize_t _long_lines
    cdef Py_ssize_t _line_length
    cdef bint _at_line_start
    cdef bint _previous_cr

    def __dealloc__(self):
        PyMem_Free(self._input)
        PyMem_Free(self._scratch)

    def __init__(self, limits=DEFAULT_LIMITS):
        self.limits = limits
        self._strict_bare_lf = limits.bare_newline == "strict"
        self._start = 0
        self._end = 0
        self._output = []
        self._state = GREETING
        self._awaiting = None
        self._eof = False
        self._greeting_refused = False
        self._draining_long_line = False
        self._drained_cr = False
        self.greeted = None
        self.tls_active = False
        self.authenticated = False
        self.improper_pipelining = None
        self.discarded_after_starttls = 0
        self._reset_transaction()

    # -- public state ----------------------------------------------------------------------

    @property
    def limits(self):
        return self._limits

    @limits.setter
    def limits(self, limits):
        # As in the twin, bare_newline is read once, at construction.
        global _cached_limits, _cached_limits_of
        if limits is not _cached_limits_of:
            _cached_limits = _read_limits(limits)
            _cached_limits_of = limits
        self._limit = _cached_limits
        self._limits = limits

    @property
    def state(self):
        return STATE_NAMES[self._state]

    @property
    def closed(self):
        return self._state == CLOSED

    @property
    def awaiting_reply(self):
        return self._awaiting is not None or self._state == GREETING

    @property
    def in_transaction(self):
        return self._in_mail

    @property
    def recipient_count(self):
        return self._recipients

    @property
    def buffered(self):
        return self._end - self._start

    # -- input -----------------------------------------------------------------------------

    def receive_data(self, data):
        """Take bytes from the client; b"" means the client closed its side."""
        cdef Py_buffer view
        if not data:
            self._eof = True
            return
        if self._state == CLOSED:
            return
        if self._end - self._start + len(data) > self._limit.input_buffer:
            raise InputOverflow(
                f"more than {self._limits.input_buffer_limit} octets unprocessed"
            )
        if PyBytes_CheckExact(data):
            self._append(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._append(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef int _append(self, const unsigned char* data, Py_ssize_t length) except -1:
        cdef Py_ssize_t unprocessed = self._end - self._start
        cdef Py_ssize_t needed = unprocessed + length
        cdef Py_ssize_t capacity
        cdef unsigned char* grown
        if self._end + length > self._capacity:
            if self._start:
                memmove(self._input, self._input + self._start, unprocessed)
                self._start = 0
                self._end = unprocessed
            if needed > self._capacity:
                capacity = max(needed, min(2 * self._capacity, self._limit.input_buffer), 4096)
                grown = <unsigned char*>PyMem_Realloc(self._input, capacity)
                if grown == NULL:
                    raise MemoryError()
                self._input = grown
                self._capacity = capacity
        memcpy(self._input + self._end, data, length)
        self._end += length
        return 0

    cdef inline void _consume_to(self, Py_ssize_t position) noexcept:
        if position >= self._end:
            self._start = 0
            self._end = 0
        else:
            self._start = position

    cdef inline void _clear(self) noexcept:
        self._start = 0
        self._end = 0

    def next_event(self):
        """The next event, or None when more input (or a reply) is needed first."""
        return self._next_event()

    cdef object _next_event(self):
        cdef int state
        cdef int found
        while True:
            state = self._state
            if state == CLOSED or state == GREETING or self._awaiting is not None:
                return None
            if state == CONTENT:
                return self._content_event()
            if state == CHUNK:
                return self._chunk_event()
            found = self._take_line(
                self._limit.auth_line if state == AUTH_LINE else self._limit.command_line
            )
            if found == LINE_NONE:
                return self._closed_event() if self._eof else None
            if found == LINE_BARE_LF:
                return self._awaits(BARE_LF)
            if found == LINE_TOO_LONG_FOUND:
                if state == AUTH_LINE:
                    self._state = COMMAND
                    return self._awaits(AUTH_LINE_TOO_LONG)
                return self._awaits(LINE_TOO_LONG)
            if state == AUTH_LINE:
                return self._auth_response()
            event = self._command()
            if event is None:
                # A refused BDAT: its octets are read before the reply.
                continue
            if type(event) is Bdat:
                # BDAT octets follow at once: the reply comes when the chunk has been read.
                return event
            return self._awaits(event)

    cdef inline object _awaits(self, object event):
        self._awaiting = event
        return event

    cdef object _closed_event(self):
        self._state = CLOSED
        self._clear()
        return ConnectionClosed()

    cdef int _take_line(self, Py_ssize_t limit) noexcept:
        """Cut one line (without its line end) from the input, within `limit` octets."""
        cdef const unsigned char* buffer = self._input + self._start
        cdef Py_ssize_t size = self._end - self._start
        cdef const unsigned char* newline = NULL
        cdef Py_ssize_t end
        cdef bint crlf
        if size:
            newline = <const unsigned char*>memchr(buffer, LF, size)
        if newline == NULL:
            if self._draining_long_line or size >= limit:
                # Over the limit before its end: drop it as it comes, remembering only
                # whether the last octet dropped was a CR.
                self._draining_long_line = True
                if size:
                    self._drained_cr = buffer[size - 1] == CR
                self._clear()
            return LINE_NONE
        end = newline - buffer
        if end:
            crlf = buffer[end - 1] == CR
        else:
            crlf = self._drained_cr and self._draining_long_line
        if not crlf and self._strict_bare_lf:
            self._clear()
            return LINE_BARE_LF
        if self._draining_long_line or end + 1 > limit:
            self._draining_long_line = False
            self._consume_to(self._start + end + 1)
            return LINE_TOO_LONG_FOUND
        self._line_start = self._start
        self._line_length_found = end - 1 if crlf else end
        self._consume_to(self._start + end + 1)
        return LINE_READY

    # -- commands --------------------------------------------------------------------------

    cdef object _command(self):
        cdef const unsigned char* line = self._input + self._line_start
        cdef Py_ssize_t length = self._line_length_found
        cdef Py_ssize_t index
        cdef Py_ssize_t verb_length
        cdef unsigned char octet
        cdef bint ascii = True
        cdef int verb
        cdef const unsigned char* space
        cdef const unsigned char* plain = NULL
        cdef Py_ssize_t plain_length = 0
        cdef str argument
        for index in range(length):
            octet = line[index]
            if octet < 32 or octet == 127:
                return SYNTAX_ERROR
            if octet >= 128:
                ascii = False
        if ascii:
            space = <const unsigned char*>memchr(line, SPACE, length)
            if space == NULL:
                verb_length = length
                argument = ""
            else:
                verb_length = space - line
                plain = space + 1
                plain_length = length - verb_length - 1
                argument = PyUnicode_DecodeLatin1(<const char*>plain, plain_length, NULL)
            verb = _ascii_verb_code(line, verb_length)
        else:
            try:
                text = PyUnicode_DecodeUTF8(<const char*>line, length, NULL)
            except UnicodeDecodeError:
                return UTF8_ERROR
            # U+0080..U+009F (C1 controls) are C2 80..C2 9F in valid UTF-8.
            for index in range(length - 1):
                if line[index] == 0xC2 and 0x80 <= line[index + 1] <= 0x9F:
                    return UTF8_ERROR
            verb_text, _, argument = text.partition(" ")
            verb = VERB_CODES.get(_ascii_upper(verb_text), VERB_NONE)
        if verb == VERB_NONE:
            return UNKNOWN_COMMAND
        if LAST_IN_GROUP[verb] and self._end > self._start and self.improper_pipelining is None:
            self.improper_pipelining = VERB_NAMES[verb]
        if self._greeting_refused and verb != VERB_QUIT:
            return NO_SERVICE
        if verb == VERB_MAIL:
            return self._mail(argument, plain, plain_length)
        if verb == VERB_RCPT:
            return self._rcpt(argument, plain, plain_length)
        if verb == VERB_EHLO or verb == VERB_HELO:
            return _hello(VERB_NAMES[verb], argument)
        if verb == VERB_DATA:
            return self._data(argument)
        if verb == VERB_QUIT:
            return QUIT_EVENT
        if verb == VERB_BDAT:
            return self._bdat(argument)
        if verb == VERB_RSET:
            return usage("RSET") if not _blank(argument) else RSET_EVENT
        if verb == VERB_NOOP:
            return NOOP_EVENT
        if verb == VERB_STARTTLS:
            return self._starttls(argument)
        if verb == VERB_AUTH:
            return self._auth(argument)
        if verb == VERB_ETRN:
            if self.greeted is None:
                return SEND_HELO
            if self._in_mail:
                return IN_TRANSACTION
            return _argument_command("ETRN", argument, Etrn)
        if verb == VERB_VRFY:
            return _argument_command("VRFY", argument, Vrfy)
        if verb == VERB_EXPN:
            return _argument_command("EXPN", argument, Expn)
        return _new_event(Help, (argument.strip(" "),))

    cdef object _mail(self, str argument, const unsigned char* plain, Py_ssize_t plain_length):
        if self._in_mail:
            return NESTED_MAIL
        if self._limit.helo_required and self.greeted is None:
            return SEND_HELO
        if plain != NULL:
            event = _plain_mail(plain, plain_length, &self._limit)
            if event is not None:
                return event
        if not _prefix_upper_equals(argument, "FROM:"):
            return usage("MAIL FROM:<address>")
        split = _split_path_and_parameters(argument[5:], self._limit.strict_envelope)
        if split is None:
            return usage("MAIL FROM:<address>")
        cdef str path_text = split[0]
        cdef str parameter_text = split[1]
        parameters = _parse_parameters(parameter_text, True)
        if type(parameters) is not dict:
            return parameters
        cdef bint smtputf8 = "SMTPUTF8" in parameters
        if smtputf8 and parameters["SMTPUTF8"] is not None:
            return BAD_SMTPUTF8
        if not smtputf8 and not (
            PyUnicode_IS_ASCII(path_text) and PyUnicode_IS_ASCII(parameter_text)
        ):
            return UNICODE_WITHOUT_SMTPUTF8
        parsed = _parse_path(
            path_text, smtputf8, self._limit.local_part, self._limit.domain, self._limit.path
        )
        if parsed is None:
            return BAD_SENDER
        address, too_long = parsed
        if too_long:
            return address_too_long(BAD_SENDER, too_long)
        size = None
        body = None
        ret = None
        envid = None
        auth = None
        for keyword, value in (<dict>parameters).items():
            if keyword == "SIZE":
                if (
                    value is None
                    or not PyUnicode_IS_ASCII(value)
                    or not value.isdigit()
                    or len(value) > MAX_SIZE_DIGITS
                ):
                    return BAD_SIZE
                size = int(value)
                if self._limit.message_size and size > self._limit.message_size:
                    return SIZE_EXCEEDS_LIMIT
            elif keyword == "BODY":
                body = _ascii_upper(value or "")
                if body not in BODY_TYPES:
                    return BAD_BODY
            elif keyword == "RET":
                ret = _ascii_upper(value or "")
                if ret != "FULL" and ret != "HDRS":
                    return BAD_RET
            elif keyword == "ENVID":
                envid = _decode_xtext(value) if value and len(value) <= ENVID_LIMIT else None
                if not envid or (not PyUnicode_IS_ASCII(envid) and not smtputf8):
                    return BAD_ENVID
            elif keyword == "AUTH":
                auth = _decode_xtext(value) if value and len(value) <= AUTH_PARAM_LIMIT else None
                if not auth:
                    return BAD_AUTH_PARAMETER
            elif keyword != "SMTPUTF8":
                return unsupported_option(keyword)
        return _new_event(Mail, (address, size, body, smtputf8, ret, envid, auth))

    cdef object _rcpt(self, str argument, const unsigned char* plain, Py_ssize_t plain_length):
        if not self._in_mail:
            return NEED_MAIL
        if self._bdat_transaction:
            return AFTER_BDAT
        if plain != NULL:
            event = _plain_rcpt(plain, plain_length, &self._limit)
            if event is not None:
                if self._limit.recipient and self._recipients >= self._limit.recipient:
                    return TOO_MANY_RECIPIENTS
                return event
        if not _prefix_upper_equals(argument, "TO:"):
            return usage("RCPT TO:<address>")
        split = _split_path_and_parameters(argument[3:], self._limit.strict_envelope)
        if split is None:
            return usage("RCPT TO:<address>")
        cdef str path_text = split[0]
        cdef str parameter_text = split[1]
        cdef bint utf8 = self._smtputf8
        if not utf8 and not PyUnicode_IS_ASCII(argument):
            return UNICODE_WITHOUT_SMTPUTF8
        parameters = _parse_parameters(parameter_text, utf8)
        if type(parameters) is not dict:
            return parameters
        parsed = _parse_path(
            path_text, utf8, self._limit.local_part, self._limit.domain, self._limit.path
        )
        if parsed is None or not parsed[0]:
            return BAD_RECIPIENT
        address, too_long = parsed
        if too_long:
            return address_too_long(BAD_RECIPIENT, too_long)
        notify = None
        orcpt = None
        for keyword, value in (<dict>parameters).items():
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
        if self._limit.recipient and self._recipients >= self._limit.recipient:
            return TOO_MANY_RECIPIENTS
        return _new_event(Rcpt, (address, notify, orcpt))

    cdef object _data(self, str argument):
        if not _blank(argument):
            return usage("DATA")
        if self._bdat_transaction:
            return AFTER_BDAT
        if not self._in_mail or not self._recipients:
            return NEED_RCPT
        if self._binarymime:
            return BINARYMIME_NEEDS_BDAT
        return DATA_EVENT

    cdef object _bdat(self, str argument):
        words = argument.split(" ")
        cdef Py_ssize_t count = len(words)
        cdef str size_text = words[0]
        if (
            not 1 <= count <= 2
            or not size_text.isdigit()
            or not PyUnicode_IS_ASCII(size_text)
            or len(size_text) > MAX_SIZE_DIGITS
            or (count == 2 and _ascii_upper(words[1]) != "LAST")
        ):
            self._clear()
            return BDAT_SYNTAX
        cdef Py_ssize_t size = int(size_text)
        cdef bint last = count == 2
        cdef bint refused = not self._in_mail or not self._recipients
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
        return _new_event(Bdat, (size, last))

    cdef object _starttls(self, str argument):
        if not _blank(argument):
            return usage("STARTTLS")
        if self.tls_active:
            return TLS_ACTIVE
        if self.greeted != "EHLO":
            return SEND_EHLO
        if self._in_mail:
            return IN_TRANSACTION
        return STARTTLS_EVENT

    cdef object _auth(self, str argument):
        if self.greeted != "EHLO":
            return SEND_EHLO
        if self.authenticated:
            return ALREADY_AUTHENTICATED
        if self._in_mail:
            return IN_TRANSACTION
        words = argument.split(" ")
        cdef Py_ssize_t count = len(words)
        cdef str mechanism = _ascii_upper(words[0])
        cdef Py_UCS4 point
        cdef bint valid = 1 <= count <= 2 and 0 < len(mechanism) <= SASL_MECHANISM_LIMIT
        if valid:
            for point in mechanism:
                if not (48 <= point <= 57 or 65 <= point <= 90 or point == 45 or point == 95):
                    valid = False
                    break
        if not valid or (count == 2 and not words[1]):
            return usage("AUTH mechanism")
        return _new_event(Auth, (mechanism, words[1] if count == 2 else None))

    cdef object _auth_response(self):
        cdef const unsigned char* line = self._input + self._line_start
        cdef Py_ssize_t length = self._line_length_found
        cdef Py_ssize_t index
        self._state = COMMAND
        for index in range(length):
            if not 32 <= line[index] <= 126:
                return self._awaits(BAD_AUTH_RESPONSE)
        return self._awaits(
            _new_event(AuthResponse, (PyUnicode_DecodeLatin1(<const char*>line, length, NULL),))
        )

    # -- content: DATA ---------------------------------------------------------------------

    cdef void _reset_content(self) noexcept:
        self._content_size = 0
        self._content_too_big = False
        self._long_lines = 0
        self._line_length = 0
        self._at_line_start = True
        self._previous_cr = False

    cdef inline Py_ssize_t _kept(self, Py_ssize_t length) noexcept:
        """Account for `length` content octets; how many of them fit message_size_limit."""
        cdef Py_ssize_t limit = self._limit.message_size
        cdef Py_ssize_t size = self._content_size + length
        cdef Py_ssize_t kept = length
        if limit and size > limit:
            kept = 0
            if not self._content_too_big:
                kept = max(limit - self._content_size, 0)
                self._content_too_big = True
        self._content_size = size
        return kept

    cdef int _reserve_scratch(self, Py_ssize_t size) except -1:
        cdef unsigned char* grown
        if size > self._scratch_capacity:
            grown = <unsigned char*>PyMem_Realloc(self._scratch, size)
            if grown == NULL:
                raise MemoryError()
            self._scratch = grown
            self._scratch_capacity = size
        return 0

    cdef object _content_event(self):
        """Dot-unstuffed content up to what can be decided, or the end of the message.

        Only CR LF "." CR LF ends a message: the CR LF belongs to the content, so the engine
        holds back nothing but a line-initial prefix of ".\\r\\n" at the end of the buffer.
        """
        cdef const unsigned char* buffer = self._input
        cdef Py_ssize_t position = self._start
        cdef Py_ssize_t size = self._end
        cdef Py_ssize_t text_limit = self._limit.text_line
        cdef Py_ssize_t newline
        cdef Py_ssize_t kept
        cdef Py_ssize_t out = 0
        cdef const unsigned char* found
        cdef bint crlf
        self._reserve_scratch(size - position)
        cdef unsigned char* scratch = self._scratch
        while position < size:
            if self._at_line_start:
                if buffer[position] == DOT:
                    if size - position >= 3:
                        if buffer[position + 1] == CR and buffer[position + 2] == LF:
                            if out:
                                break
                            self._consume_to(position + 3)
                            return self._end_of_data()
                    elif size - position == 1 or buffer[position + 1] == CR:
                        break
                    position += 1
                    self._line_length = 1
                    self._previous_cr = False
                self._at_line_start = False
            found = <const unsigned char*>memchr(buffer + position, LF, size - position)
            if found == NULL:
                self._line_length += size - position
                self._previous_cr = buffer[size - 1] == CR
                kept = self._kept(size - position)
                memcpy(scratch + out, buffer + position, kept)
                out += kept
                position = size
                break
            newline = found - buffer
            crlf = buffer[newline - 1] == CR if newline > position else self._previous_cr
            if not crlf and self._strict_bare_lf:
                if newline > position:
                    kept = self._kept(newline - position)
                    memcpy(scratch + out, buffer + position, kept)
                    out += kept
                    self._consume_to(newline)
                    self._previous_cr = False
                    if out:
                        return self._data_chunk(out)
                    # Nothing kept (past message_size_limit): the bare LF is decidable now.
                self._clear()
                return self._awaits(BARE_LF)
            self._line_length += newline + 1 - position
            kept = self._kept(newline + 1 - position)
            memcpy(scratch + out, buffer + position, kept)
            out += kept
            position = newline + 1
            self._previous_cr = False
            if crlf:
                if self._line_length > text_limit:
                    self._long_lines += 1
                self._line_length = 0
                self._at_line_start = True
        self._consume_to(position)
        if out:
            return self._data_chunk(out)
        if self._eof:
            return self._closed_event()
        return None

    cdef object _data_chunk(self, Py_ssize_t length):
        return _new_event(
            DataChunk, (PyBytes_FromStringAndSize(<const char*>self._scratch, length),)
        )

    cdef object _end_of_data(self):
        self._state = COMMAND
        if self._content_too_big:
            return self._awaits(MESSAGE_TOO_BIG)
        return self._awaits(_new_event(EndOfData, (self._content_size, self._long_lines)))

    # -- content: BDAT ---------------------------------------------------------------------

    cdef object _chunk_event(self):
        cdef Py_ssize_t remaining = self._chunk_remaining
        cdef Py_ssize_t taken, kept
        cdef const unsigned char* piece
        if remaining:
            if self._end == self._start:
                return self._closed_event() if self._eof else None
            taken = min(remaining, self._end - self._start)
            piece = self._input + self._start
            self._consume_to(self._start + taken)
            self._chunk_remaining = remaining - taken
            if self._chunk_refusal is None:
                kept = self._kept(taken)
                if kept:
                    return _new_event(
                        DataChunk, (PyBytes_FromStringAndSize(<const char*>piece, kept),)
                    )
            if self._chunk_remaining:
                return None
        self._state = COMMAND
        if self._chunk_refusal is not None:
            return self._awaits(self._chunk_refusal)
        if self._content_too_big:
            return self._awaits(MESSAGE_TOO_BIG)
        if self._chunk_last:
            return self._awaits(_new_event(EndOfData, (self._content_size, 0)))
        return self._awaits(_new_event(EndOfChunk, (self._chunk_size,)))

    # -- output ----------------------------------------------------------------------------

    def reply(self, code, text, status=None):
        """Queue the reply to the event awaiting one (or the greeting) and move state."""
        if self._state == CLOSED:
            raise RuntimeError("the session is closed")
        event = self._awaiting
        if event is None and self._state != GREETING:
            raise RuntimeError("no event is awaiting a reply")
        formatted = _format_plain_reply(code, text, status)
        if formatted is None:
            formatted = _format_reply(code, [text] if isinstance(text, str) else list(text), status)
        self._output.append(formatted)
        self._awaiting = None
        cdef int number
        if type(code) is int:
            number = code
        else:
            number = 421 if code == 421 else 220 if code == 220 else 354 if code == 354 else (
                334 if code == 334 else 235 if code == 235 else 0
            )
        self._transition(event, number, 200 <= code < 300)

    cdef void _transition(self, object event, int code, bint positive) except *:
        """`code` is the reply code when it is an int, else the special code it equals (or 0)."""
        if code == 421:
            self._close()
            return
        if event is None:
            if code != 220:
                self._greeting_refused = True
            self._state = COMMAND
            return
        cdef int after = TRANSITIONS.get(type(event), AFTER_NOTHING)
        if after == AFTER_HELLO:
            if positive:
                self.greeted = event[0]
                self._reset_transaction()
        elif after == AFTER_MAIL:
            if positive:
                self._in_mail = True
                self._smtputf8 = event[3]
                self._binarymime = event[2] == "BINARYMIME"
        elif after == AFTER_RCPT:
            if positive:
                self._recipients += 1
        elif after == AFTER_DATA:
            if code == 354:
                self._state = CONTENT
                self._reset_content()
        elif after == AFTER_CHUNK:
            if not positive:
                self._reset_transaction()
        elif after == AFTER_MESSAGE:
            self._reset_transaction()
        elif after == AFTER_RSET:
            if positive:
                self._reset_transaction()
        elif after == AFTER_QUIT:
            self._close()
        elif after == AFTER_STARTTLS:
            if code == 220:
                # Anything pipelined after STARTTLS came in clear text: it must not be read
                # as if it came over TLS (CVE-2011-0411).
                self.discarded_after_starttls += self._end - self._start
                self._clear()
                self.tls_active = True
                self.greeted = None
                self._reset_transaction()
        elif after == AFTER_AUTH:
            if code == 334:
                self._state = AUTH_LINE
            elif code == 235:
                self.authenticated = True
        elif after == AFTER_ERROR:
            if event[3]:
                self._close()
            elif event is MESSAGE_TOO_BIG or event is BARE_LF:
                self._reset_transaction()

    cdef void _close(self) noexcept:
        self._state = CLOSED
        self._clear()

    cdef void _reset_transaction(self) noexcept:
        self._in_mail = False
        self._recipients = 0
        self._smtputf8 = False
        self._binarymime = False
        self._bdat_transaction = False
        self._chunk_remaining = 0
        self._chunk_size = 0
        self._chunk_last = False
        self._chunk_refusal = None
        self._reset_content()

    def data_to_send(self):
        """All replies queued since the last call, as one write."""
        if not self._output:
            return b""
        data = b"".join(self._output)
        self._output.clear()
        return data


cdef object _hello(str verb, str argument):
    domain = argument.strip(" ")
    if not domain or not PyUnicode_IS_ASCII(domain):
        return usage(f"{verb} hostname")
    return _new_event(Hello, (verb, domain))


cdef object _argument_command(str verb, str argument, object event):
    argument = argument.strip(" ")
    if not argument:
        return usage(f"{verb} {'domain' if event is Etrn else 'address'}")
    return _new_event(event, (argument,))


# ---------------------------------------------------------------------------------------------
# Client side.


cdef object _split_enhanced_status(str text, int code):
    """("x.y.z", rest) when text starts with an RFC 2034 status of the code's class."""
    cdef Py_ssize_t length = len(text)
    cdef Py_ssize_t head_end = text.find(" ")
    cdef Py_ssize_t dots = 1
    cdef Py_ssize_t part_length = 0
    cdef Py_UCS4 point
    if head_end < 0:
        head_end = length
    if head_end > ENHANCED_STATUS_MAX or head_end < 5:
        return None, text
    if text[0] != 48 + code // 100 or text[1] != 46:
        return None, text
    for point in text[2:head_end]:
        if point == 46:
            if part_length == 0:
                return None, text
            dots += 1
            part_length = 0
        elif 48 <= point <= 57:
            part_length += 1
            if part_length > 3:
                return None, text
        else:
            return None, text
    if dots != 2 or part_length == 0:
        return None, text
    return text[:head_end], text[head_end + 1 :]


@cython.auto_pickle(False)
cdef class ReplyParser:
    """Assembles server replies from bytes; bounded in line length and lines per reply."""

    cdef public Py_ssize_t line_limit
    cdef public Py_ssize_t max_lines
    cdef bytearray _buffer
    cdef list _lines
    cdef int _code

    def __init__(self, line_limit=2048, max_lines=100):
        self.line_limit = line_limit
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._lines = []
        self._code = 0

    def receive_data(self, data):
        self._buffer += data
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self._buffer)
        cdef Py_ssize_t limit = self.line_limit
        cdef Py_ssize_t window
        if size > limit:
            # buffer.find(b"\n", 0, line_limit), with slice rules for a negative bound.
            window = limit if limit >= 0 else max(size + limit, 0)
            if memchr(PyByteArray_AS_STRING(self._buffer), LF, window) == NULL:
                raise ReplySyntaxError(f"reply line longer than {self.line_limit} octets")

    def next_reply(self):
        """The next complete reply, or None until more bytes arrive."""
        cdef bytearray buffer = self._buffer
        cdef const unsigned char* data
        cdef const unsigned char* found
        cdef Py_ssize_t end, length
        cdef int code
        cdef unsigned char separator
        while True:
            data = <const unsigned char*>PyByteArray_AS_STRING(buffer)
            found = NULL
            if PyByteArray_GET_SIZE(buffer):
                found = <const unsigned char*>memchr(data, LF, PyByteArray_GET_SIZE(buffer))
            if found == NULL:
                if PyByteArray_GET_SIZE(buffer) >= self.line_limit:
                    raise ReplySyntaxError(f"reply line longer than {self.line_limit} octets")
                return None
            end = found - data
            if end + 1 > self.line_limit:
                raise ReplySyntaxError(f"reply line longer than {self.line_limit} octets")
            length = end - 1 if end and data[end - 1] == CR else end
            separator = data[3] if length > 3 else 0
            if (
                length < 3
                or not (50 <= data[0] <= 53 and 48 <= data[1] <= 57 and 48 <= data[2] <= 57)
                or (length > 3 and separator != SPACE and separator != 45)
            ):
                raw = PyBytes_FromStringAndSize(<const char*>data, length)
                del buffer[: end + 1]
                raise ReplySyntaxError(f"malformed reply line {raw[:40]!r}")
            code = (data[0] - 48) * 100 + (data[1] - 48) * 10 + (data[2] - 48)
            text = PyUnicode_DecodeUTF8(<const char*>data + 4, length - 4, "replace") if length > 4 else ""
            del buffer[: end + 1]
            if self._lines and code != self._code:
                raise ReplySyntaxError("reply lines with different codes")
            self._code = code
            self._lines.append(text)
            if separator == 45:
                if len(self._lines) >= self.max_lines:
                    raise ReplySyntaxError(f"reply longer than {self.max_lines} lines")
                continue
            return self._complete()

    cdef object _complete(self):
        cdef int code = self._code
        cdef list collected = self._lines
        status, first = _split_enhanced_status(collected[0], code)
        lines = [first]
        for line in collected[1:]:
            line_status, rest = _split_enhanced_status(line, code)
            lines.append(rest if line_status == status and status else line)
        self._lines = []
        return _new_event(Reply, (code, status, tuple(lines)))


# ---------------------------------------------------------------------------------------------
# Client side: dot-stuffing.


cdef Py_ssize_t _stuffed_bound(Py_ssize_t length, Py_ssize_t line_limit) noexcept:
    """Most octets feeding `length` octets (a pending CR included) can produce."""
    cdef Py_ssize_t doubled = 2 * (length + 1)
    if not line_limit:
        return doubled + 8
    return doubled + 3 * (doubled // (line_limit - 1) + 2) + 8


@cython.auto_pickle(False)
cdef class DotStuffer:
    """Turns message content into DATA octets, chunk by chunk (RFC 5321 4.5.2).

    Every line end becomes CRLF (a bare CR or LF included: we never send either); a line that
    starts with "." gets another; a line longer than `line_limit` octets is broken by
    inserting CRLF SPACE, as Postfix's smtp_line_length_limit does (0: never).
    `finish()` ends the last line and adds the "." CRLF terminator.
    """

    cdef Py_ssize_t _line_limit
    cdef bint _at_line_start
    cdef bint _pending_cr
    cdef Py_ssize_t _line_length

    def __init__(self, line_limit=998):
        self.line_limit = line_limit
        self._at_line_start = True
        self._pending_cr = False
        self._line_length = 0

    @property
    def line_limit(self):
        return self._line_limit

    @line_limit.setter
    def line_limit(self, Py_ssize_t value):
        # A limit of 1 leaves no room after the inserted SPACE: folding would never end.
        if value and value < 2:
            raise ValueError("line_limit must be 0 or at least 2")
        self._line_limit = value

    def feed(self, data):
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char*>view.buf, view.len, False)
        finally:
            PyBuffer_Release(&view)

    def finish(self):
        return self._finish()

    cdef bytes _finish(self):
        ending = b"\r\n" if self._pending_cr or not self._at_line_start else b""
        self._pending_cr = False
        self._at_line_start = True
        self._line_length = 0
        return ending + b".\r\n"

    cdef bytes _feed(self, const unsigned char* data, Py_ssize_t length, bint finish):
        """The DATA octets for `data`, then (with `finish`) the end of the message."""
        cdef Py_ssize_t limit = self._line_limit
        cdef Py_ssize_t capacity
        cdef Py_ssize_t written
        cdef unsigned char* out
        capacity = _stuffed_bound(length, limit) + (5 if finish else 0)
        out = <unsigned char*>PyMem_Malloc(capacity)
        if out == NULL:
            raise MemoryError()
        try:
            written = self._stuff(data, length, out)
            if finish:
                if self._pending_cr or not self._at_line_start:
                    out[written] = CR
                    out[written + 1] = LF
                    written += 2
                out[written] = DOT
                out[written + 1] = CR
                out[written + 2] = LF
                written += 3
                self._pending_cr = False
                self._at_line_start = True
                self._line_length = 0
            return PyBytes_FromStringAndSize(<const char*>out, written)
        finally:
            PyMem_Free(out)

    cdef Py_ssize_t _stuff(
        self, const unsigned char* data, Py_ssize_t length, unsigned char* out
    ) noexcept:
        cdef bint pending = self._pending_cr
        cdef Py_ssize_t end = length
        cdef Py_ssize_t index = 0
        cdef Py_ssize_t part_start
        cdef Py_ssize_t written = 0
        cdef unsigned char octet
        # The content is b"\r" (if one was pending) + data, less a final CR, which waits to
        # see whether an LF follows.
        if length and data[length - 1] == CR:
            self._pending_cr = True
            end = length - 1
        elif length:
            self._pending_cr = False
        if pending and length:
            out[written] = CR
            out[written + 1] = LF
            written += 2
            self._at_line_start = True
            self._line_length = 0
            if end and data[0] == LF:
                index = 1
        while index < end:
            part_start = index
            while index < end:
                octet = data[index]
                if octet == CR or octet == LF:
                    break
                index += 1
            if index > part_start:
                written = self._append_line_part(data + part_start, index - part_start, out, written)
            if index < end:
                if data[index] == CR and index + 1 < end and data[index + 1] == LF:
                    index += 1
                index += 1
                out[written] = CR
                out[written + 1] = LF
                written += 2
                self._at_line_start = True
                self._line_length = 0
        return written

    cdef Py_ssize_t _append_line_part(
        self, const unsigned char* part, Py_ssize_t length, unsigned char* out, Py_ssize_t written
    ) noexcept:
        cdef Py_ssize_t limit = self._line_limit
        cdef Py_ssize_t room
        if self._at_line_start and part[0] == DOT:
            # The line starts empty, so the added dot always fits before any fold.
            out[written] = DOT
            written += 1
            self._line_length += 1
        self._at_line_start = False
        if limit:
            while self._line_length + length > limit:
                room = limit - self._line_length
                memcpy(out + written, part, room)
                written += room
                out[written] = CR
                out[written + 1] = LF
                out[written + 2] = SPACE
                written += 3
                part += room
                length -= room
                self._line_length = 1
        memcpy(out + written, part, length)
        self._line_length += length
        return written + length


def dot_stuff(content, line_limit=998):
    """The DATA octets for a whole message, terminator included."""
    cdef DotStuffer stuffer = DotStuffer(line_limit)
    cdef Py_buffer view
    PyObject_GetBuffer(content, &view, PyBUF_SIMPLE)
    try:
        return stuffer._feed(<const unsigned char*>view.buf, view.len, True)
    finally:
        PyBuffer_Release(&view)
