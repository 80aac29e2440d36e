"""Modified UTF-7 mailbox name encoding, RFC 3501 §5.1.3 (kept by RFC 9051
§5.1 for clients that have not enabled UTF8=ACCEPT).
"""

from __future__ import annotations

import base64
import binascii


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=").replace(b"/", b",")


def encode_mutf7(name: str) -> bytes:
    """Encode a mailbox name; printable ASCII stays itself, '&' becomes '&-'."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.extend(b"&" + _b64(raw) + b"-")
            pending.clear()

    for ch in name:
        code = ord(ch)
        if 0x20 <= code <= 0x7E:
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def decode_mutf7(name: bytes | str) -> str:
    """Decode a modified UTF-7 name; ValueError on anything RFC 3501 forbids
    (8-bit or control bytes, unterminated or non-canonical shifts, encoded
    printable ASCII, broken UTF-16)."""
    data = name.encode("ascii") if isinstance(name, str) and name.isascii() else name
    if isinstance(data, str):
        raise ValueError("modified UTF-7 is ASCII only")
    out: list[str] = []
    i, n = 0, len(data)
    last_shift_end = -1
    while i < n:
        c = data[i]
        if not 0x20 <= c <= 0x7E:
            raise ValueError(f"byte 0x{c:02x} not allowed in modified UTF-7")
        if c != 0x26:  # '&'
            out.append(chr(c))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise ValueError("unterminated '&' shift")
        chunk = data[i + 1:end]
        if not chunk:
            out.append("&")
            i = end + 1
            continue
        if last_shift_end == i:
            # two adjacent shifts must have been written as one
            raise ValueError("adjacent base64 shifts")
        if any(b not in _B64_CHARS for b in chunk) or len(chunk) % 4 == 1:
            raise ValueError("invalid modified base64")
        padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
        except binascii.Error as exc:
            raise ValueError("invalid modified base64") from exc
        if len(raw) % 2 or _b64(raw) != chunk:
            # odd UTF-16 length or non-zero leftover bits: not canonical
            raise ValueError("invalid modified base64 padding")
        try:
            text = raw.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise ValueError("invalid UTF-16 in shift") from exc
        if any(0x20 <= ord(ch) <= 0x7E for ch in text):
            raise ValueError("printable ASCII must not be base64-encoded")
        out.append(text)
        i = end + 1
        last_shift_end = i
    return "".join(out)
