"""SASLprep (RFC 4013): the string preparation SCRAM applies to passwords
(RFC 5802 §2.2 "Normalize") before hashing, so that "é" typed precomposed on
one device and decomposed on another is the same password.

Implemented with the RFC 3454 tables in the standard ``stringprep`` module:
§2.1 mapping (non-ASCII spaces to SPACE, "commonly mapped to nothing"
removed), §2.2 NFKC, §2.3 prohibited output, §2.4 bidi rules, and unassigned
code points refused (RFC 3454 §7, "stored strings").
"""

from __future__ import annotations

import stringprep
import unicodedata


class SaslprepError(ValueError):
    """The string holds a character SASLprep prohibits."""


_PROHIBITED = (
    stringprep.in_table_c12,   # non-ASCII space (after mapping none remain)
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str) -> str:
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in text
        if not stringprep.in_table_b1(c)
    )
    out = unicodedata.normalize("NFKC", mapped)
    for c in out:
        if any(check(c) for check in _PROHIBITED):
            raise SaslprepError(f"prohibited character U+{ord(c):04X}")
        if stringprep.in_table_a1(c):
            raise SaslprepError(f"unassigned character U+{ord(c):04X}")
    if any(stringprep.in_table_d1(c) for c in out):
        # RFC 3454 §6: right-to-left text contains no left-to-right characters
        # and starts and ends with a right-to-left character.
        if any(stringprep.in_table_d2(c) for c in out):
            raise SaslprepError("mixed bidirectional text")
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise SaslprepError("right-to-left text must start and end with an RTL character")
    return out
