"""Type stub of hotpath._parser, the compiled twin of hotpath._parser_py (same API).

The classes are described by the twin's own definitions, so that the facade (hotpath.parser)
can bind either module's classes to one name; the functions are spelled out.
"""

from hotpath._parser_py import DotStuffer as DotStuffer
from hotpath._parser_py import ReplyParser as ReplyParser
from hotpath._parser_py import ServerEngine as ServerEngine
from hotpath.events import ServerLimits

__all__ = [
    "DEFAULT_LIMITS",
    "DotStuffer",
    "ReplyParser",
    "ServerEngine",
    "decode_xtext",
    "dot_stuff",
    "parse_path",
]

DEFAULT_LIMITS: ServerLimits

def decode_xtext(value: str, limit: int) -> str | None: ...
def parse_path(
    text: str, utf8: bool, limits: ServerLimits = ...
) -> tuple[str, str | None] | None: ...
def dot_stuff(content: bytes, line_limit: int = 998) -> bytes: ...
