"""RFC 3461 xtext encoding for the DSN parameters the client passes on (ENVID=, ORCPT=).

    encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"

hotpath.parser has the decoder (smtpd's side); this is the client's. Every character outside
"!" to "~", and "+" and "=", becomes +XX. Only ASCII can be encoded: the caller leaves a
non-ASCII value out rather than send it malformed.
"""

from __future__ import annotations


def encode_xtext(value: str) -> str | None:
    """The xtext form of value, or None when value holds a non-ASCII character."""
    if not value.isascii():
        return None
    return "".join(
        f"+{ord(char):02X}" if char in "+=" or not "!" <= char <= "~" else char for char in value
    )
