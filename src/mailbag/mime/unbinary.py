"""A NUL-free rendering of a message for BODY[...] and RFC822 fetches
(RFC 3516 §4.2 and RFC 9051 §4.3: a literal may not contain NUL; only
`literal8`, which BINARY[...] answers with, may).

A message appended with a binary literal can hold parts whose bodies contain
NUL. BINARY[...] serves those bytes as they are; for BODY[...] each such part
is re-encoded as base64 and its Content-Transfer-Encoding rewritten, as
Dovecot does. The conversion is computed on demand: it is rare, and the
stored blob stays byte-identical to what the client appended.
"""

from __future__ import annotations

import base64

from mailbag.mime.headers import split_fields
from mailbag.mime.message import ParsedMessage, Part

_CTE = b"CONTENT-TRANSFER-ENCODING"


def _leaves_with_nul(raw: bytes, part: Part, out: list[Part]) -> None:
    if part.children:
        for child in part.children:
            _leaves_with_nul(raw, child, out)
    elif part.message is not None:
        _leaves_with_nul(raw, part.message, out)
    elif raw.find(b"\x00", part.body_start, part.body_end) >= 0:
        out.append(part)


def _base64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def without_nul(raw: bytes, msg: ParsedMessage) -> bytes:
    """*raw* with every part whose body holds NUL turned into base64.

    Returns *raw* itself when there is nothing to convert. A NUL in a header
    (no encoding can carry it) is replaced by a space, as Dovecot does."""
    if b"\x00" not in raw:
        return raw
    leaves: list[Part] = []
    _leaves_with_nul(raw, msg.root, leaves)
    out: list[bytes] = []
    pos = 0
    for part in leaves:  # in document order, so offsets only grow
        out.append(raw[pos:part.header_start])
        header = []
        for f in split_fields(raw, part.header_start, part.body_start):
            if f.key != _CTE:
                header.append(raw[f.start:f.end])
        header.append(b"Content-Transfer-Encoding: base64\r\n\r\n")
        out.append(b"".join(header))
        out.append(_base64_lines(raw[part.body_start:part.body_end]))
        pos = part.body_end
    out.append(raw[pos:])
    return b"".join(out).replace(b"\x00", b" ")
