"""The SMTP protocol engine: the compiled `_parser` unless MTA_NO_EXTENSIONS=1 or unbuilt.

`ACCELERATED` tells which implementation is in use. See `_parser_py.py` for the contract.
"""

from hotpath import NO_EXTENSIONS

ACCELERATED = False
if not NO_EXTENSIONS:
    try:
        from hotpath._parser import (
            DEFAULT_LIMITS,
            DotStuffer,
            ReplyParser,
            ServerEngine,
            decode_xtext,
            dot_stuff,
            parse_path,
        )

        ACCELERATED = True
    except ImportError:
        pass
if not ACCELERATED:
    from hotpath._parser_py import (
        DEFAULT_LIMITS,
        DotStuffer,
        ReplyParser,
        ServerEngine,
        decode_xtext,
        dot_stuff,
        parse_path,
    )

__all__ = [
    "ACCELERATED",
    "DEFAULT_LIMITS",
    "DotStuffer",
    "ReplyParser",
    "ServerEngine",
    "decode_xtext",
    "dot_stuff",
    "parse_path",
]
