"""Byte-level helpers on raw messages (RFC 5322 §2.1 lines, §2.2 header fields).

Imports never re-encode a message: they only change line endings (bare LF to
CRLF, RFC 5322 §2.3 and RFC 9051 §2.3.4 want CRLF on the wire) and, where a
format stored bookkeeping in the header (mbox Status lines, mbsync's X-TUID),
remove exactly those fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data: bytes) -> bytes:
    """Turn every bare LF into CRLF; CRLF stays as it is (idempotent)."""
    if b"\n" not in data:
        return data
    return _BARE_LF.sub(b"\r\n", data)


def header_end(data: bytes) -> int:
    """Offset of the empty line that ends the header (len(data) if none)."""
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        line_end = n if nl < 0 else nl + 1
        line = data[pos:line_end]
        if line in (b"\n", b"\r\n"):
            return pos
        pos = line_end
    return n


def header_fields(data: bytes) -> list[tuple[bytes, bytes]]:
    """The header as (lower-cased name, whole raw field incl. continuation
    lines); lines before the first field or without a colon get name b""."""
    head = data[: header_end(data)]
    fields: list[tuple[bytes, bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
            continue
        colon = line.find(b":")
        name = line[:colon].strip().lower() if colon > 0 else b""
        fields.append((name, line))
    return fields


def header_value(data: bytes, name: bytes) -> bytes | None:
    """The unfolded value of the first field called ``name``."""
    want = name.lower()
    for fname, raw in header_fields(data):
        if fname == want:
            value = raw.split(b":", 1)[1]
            return re.sub(rb"\r?\n[ \t]", b" ", value).strip()
    return None


def strip_fields(data: bytes, names: Iterable[bytes]) -> tuple[bytes, dict[bytes, list[bytes]]]:
    """Remove the header fields called ``names``; return the message and the
    removed values by lower-cased name. The body is not touched."""
    drop = {n.lower() for n in names}
    end = header_end(data)
    fields = header_fields(data)
    if not any(name in drop for name, _ in fields):
        return data, {}
    removed: dict[bytes, list[bytes]] = {}
    kept: list[bytes] = []
    for name, raw in fields:
        if name in drop:
            value = re.sub(rb"\r?\n[ \t]", b" ", raw.split(b":", 1)[1]).strip()
            removed.setdefault(name, []).append(value)
        else:
            kept.append(raw)
    return b"".join(kept) + data[end:], removed


def add_fields(data: bytes, lines: Iterable[bytes]) -> bytes:
    """Insert header lines (without line ends) at the end of the header, with
    the message's own line ending; ``strip_fields`` undoes this exactly."""
    end = header_end(data)
    eol = b"\r\n" if data[:end].endswith(b"\r\n") or (end == 0 and data.startswith(b"\r\n")) else b"\n"
    head = data[:end]
    if head and not head.endswith(b"\n"):
        # A header with no final line end (no body at all): the new fields
        # need their own line. Re-import then differs by that one line end.
        head += eol
    return head + b"".join(line + eol for line in lines) + data[end:]
