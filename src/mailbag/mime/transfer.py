"""Content-Transfer-Encoding decoding (RFC 2045 §6.7 quoted-printable, §6.8
base64; RFC 3516 BINARY's [UNKNOWN-CTE]).

Both decoders are tolerant, as Dovecot's are: base64 ignores characters
outside its alphabet and decodes a truncated final quantum as far as it goes;
quoted-printable keeps malformed "=" sequences literally and drops the
trailing whitespace of each line (RFC 2045 §6.7 rule 3).
"""

from __future__ import annotations

import binascii
import re

IDENTITY = frozenset({"7bit", "8bit", "binary", ""})
_B64_DELETE = bytes(c for c in range(256)
                    if not (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A or 0x30 <= c <= 0x39
                            or c in b"+/="))


class UnknownEncoding(Exception):
    """The part's Content-Transfer-Encoding cannot be decoded (NO [UNKNOWN-CTE])."""

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


def decode_base64(data: bytes) -> bytes:
    clean = data.translate(None, _B64_DELETE)
    pad = clean.find(b"=")
    if pad >= 0:
        clean = clean[:pad]
    rest = len(clean) % 4
    if rest == 1:  # a lone sextet carries no whole byte
        clean = clean[:-1]
    elif rest:
        clean += b"=" * (4 - rest)
    try:
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):  # pragma: no cover - input is sanitized
        return b""


_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_quoted_printable(data: bytes) -> bytes:
    out: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if line.endswith(b"\r\n"):
            body, eol = line[:-2], b"\r\n"
        elif line.endswith(b"\n") or line.endswith(b"\r"):
            body, eol = line[:-1], line[-1:]
        else:
            body, eol = line, b""
        body = body.rstrip(b" \t")
        if body.endswith(b"="):
            # Soft line break: the "=" and the line break vanish.
            body, eol = body[:-1], b""
        out.append(_HEX.sub(_unhex, body))
        out.append(eol)
    return b"".join(out)


def _unhex(m: re.Match[bytes]) -> bytes:
    return bytes((int(m.group(1), 16),))


def decode(data: bytes, encoding: str) -> bytes:
    """Decode *data* for *encoding* (lower-case); raise UnknownEncoding."""
    if encoding in IDENTITY:
        return data
    if encoding == "base64":
        return decode_base64(data)
    if encoding == "quoted-printable":
        return decode_quoted_printable(data)
    raise UnknownEncoding(encoding)


def decode_lenient(data: bytes, encoding: str) -> bytes:
    """Like :func:`decode`, but an unknown encoding yields the bytes as they are."""
    try:
        return decode(data, encoding)
    except UnknownEncoding:
        return data
