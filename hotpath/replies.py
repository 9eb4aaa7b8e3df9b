"""The engine's own replies: every ProtocolError it can hand out, worded as Postfix's smtpd.

Shared by both implementations of the engine (`_parser.pyx`, `_parser_py.py`), so that the
wording lives in one place and the two cannot drift apart.
"""

from hotpath.events import ProtocolError


def usage(text: str) -> ProtocolError:
    """501 5.5.4 with the command's syntax, as Postfix answers a malformed command."""
    return ProtocolError(501, "5.5.4", f"Syntax: {text}", False)


def unsupported_option(keyword: str) -> ProtocolError:
    return ProtocolError(555, "5.5.4", f"Unsupported option: {keyword}", False)


def duplicate_parameter(keyword: str) -> ProtocolError:
    return ProtocolError(501, "5.5.4", f"Error: duplicate {keyword} parameter", False)


def bad_parameter_value(keyword: str) -> ProtocolError:
    return ProtocolError(501, "5.5.4", f"Bad {keyword} parameter syntax", False)


def address_too_long(bad_address: ProtocolError, reason: str) -> ProtocolError:
    """BAD_SENDER or BAD_RECIPIENT, saying which length limit the address broke."""
    return ProtocolError(
        bad_address.code, bad_address.status, f"{bad_address.text}: {reason}", False
    )


SYNTAX_ERROR = ProtocolError(500, "5.5.2", "Error: bad syntax", False)
UTF8_ERROR = ProtocolError(500, "5.5.2", "Error: bad UTF-8 syntax", False)
UNKNOWN_COMMAND = ProtocolError(502, "5.5.2", "Error: command not recognized", False)
LINE_TOO_LONG = ProtocolError(500, "5.5.2", "Error: line too long", False)
AUTH_LINE_TOO_LONG = ProtocolError(
    500, "5.5.6", "Error: authentication exchange line is too long", False
)
BARE_LF = ProtocolError(521, "5.5.2", "Error: bare <LF> received", True)
NEED_MAIL = ProtocolError(503, "5.5.1", "Error: need MAIL command", False)
NEED_RCPT = ProtocolError(503, "5.5.1", "Error: need RCPT command", False)
NESTED_MAIL = ProtocolError(503, "5.5.1", "Error: nested MAIL command", False)
SEND_HELO = ProtocolError(503, "5.5.1", "Error: send HELO/EHLO first", False)
SEND_EHLO = ProtocolError(503, "5.5.1", "Error: send EHLO first", False)
IN_TRANSACTION = ProtocolError(503, "5.5.1", "Error: MAIL transaction in progress", False)
AFTER_BDAT = ProtocolError(503, "5.5.1", "Error: BDAT transaction in progress", False)
BINARYMIME_NEEDS_BDAT = ProtocolError(503, "5.5.1", "Error: BINARYMIME requires BDAT", False)
NO_SERVICE = ProtocolError(503, "5.5.1", "Error: no valid greeting; send QUIT", False)
TLS_ACTIVE = ProtocolError(554, "5.5.1", "Error: TLS already active", False)
ALREADY_AUTHENTICATED = ProtocolError(503, "5.5.1", "Error: already authenticated", False)
TOO_MANY_RECIPIENTS = ProtocolError(452, "4.5.3", "Error: too many recipients", False)
MESSAGE_TOO_BIG = ProtocolError(552, "5.3.4", "Error: message file too big", False)
SIZE_EXCEEDS_LIMIT = ProtocolError(552, "5.3.4", "Message size exceeds fixed limit", False)
BAD_SENDER = ProtocolError(501, "5.1.7", "Bad sender address syntax", False)
BAD_RECIPIENT = ProtocolError(501, "5.1.3", "Bad recipient address syntax", False)
UNICODE_WITHOUT_SMTPUTF8 = ProtocolError(
    553, "5.6.7", "Must declare SMTPUTF8 to send unicode address", False
)
BDAT_SYNTAX = ProtocolError(501, "5.5.4", "Syntax: BDAT count [LAST]", True)
BAD_AUTH_RESPONSE = ProtocolError(501, "5.5.2", "Error: malformed authentication response", False)
BAD_PARAMETER = ProtocolError(501, "5.5.4", "Error: bad parameter syntax", False)
BAD_SMTPUTF8 = ProtocolError(501, "5.5.4", "Bad SMTPUTF8 parameter syntax", False)
BAD_SIZE = ProtocolError(501, "5.5.4", "Bad message size syntax", False)
BAD_BODY = ProtocolError(501, "5.5.4", "Bad BODY keyword syntax", False)
BAD_RET = ProtocolError(501, "5.5.4", "Bad RET parameter syntax", False)
BAD_ENVID = ProtocolError(501, "5.5.4", "Bad ENVID parameter syntax", False)
BAD_AUTH_PARAMETER = ProtocolError(501, "5.5.4", "Bad AUTH parameter syntax", False)
BAD_NOTIFY = ProtocolError(501, "5.5.4", "Error: Bad NOTIFY parameter syntax", False)
BAD_ORCPT = ProtocolError(501, "5.5.4", "Error: Bad ORCPT parameter syntax", False)
