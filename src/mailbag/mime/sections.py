"""Section extraction for FETCH BODY[section] (RFC 9051 §6.4.5 "section",
"section-part", "section-text", "section-msgtext") and BINARY[part] /
BINARY.SIZE[part] (RFC 3516 §4.1-4.2, RFC 9051 §6.4.5).

Part numbering: the parts of a multipart are numbered from 1; a message that
is not multipart has one part, 1, which is its body; the part number of a
message/rfc822 (or message/global) part goes on into the encapsulated message
by the same rules, and its HEADER, TEXT and HEADER.FIELDS are the encapsulated
message's. MIME is the part's own header. A section that does not exist (a
part number too high, HEADER/TEXT of a part that is not a message) is None;
the caller answers NIL for it (the value is an nstring, and RFC 3501 §7.4.2
has clients treat NIL like an empty string).

Partial fetches (<start.length>) are the caller's slicing.
"""

from __future__ import annotations

from mailbag.mime.headers import split_fields
from mailbag.mime.message import ParsedMessage, Part
from mailbag.mime.transfer import IDENTITY, UnknownEncoding, decode
from mailbag.wire.commands import Section

__all__ = ["UnknownEncoding", "binary_section", "binary_size", "find_part", "section_bytes"]


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part numbered *path* (non-empty), or None when there is none."""
    if not path:
        return None
    cur: Part | None = None
    msg = root                      # the entity whose parts the next number counts
    for n in path:
        if n < 1:
            return None
        if cur is not None:
            if cur.message is not None:
                msg = cur.message
            elif cur.type == "multipart":
                msg = cur
            else:
                return None
        if msg.type == "multipart":
            if n > len(msg.children):
                return None
            cur = msg.children[n - 1]
        elif n == 1:
            cur = msg               # a single-part message's part 1 is its body
        else:
            return None
    return cur


def _header_fields(raw: bytes, start: int, end: int, names: tuple[bytes, ...], keep: bool) -> bytes:
    wanted = frozenset(n.upper() for n in names)
    out: list[bytes] = []
    for f in split_fields(raw, start, end):
        if (f.key in wanted) == keep:
            line = raw[f.start:f.end]
            out.append(line if line.endswith(b"\n") else line + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def _message_text(raw: bytes, m: Part, section: Section) -> bytes | None:
    """HEADER / HEADER.FIELDS[.NOT] / TEXT of the message whose root is *m*."""
    if section.text == "HEADER" or section.text == "MIME":
        return raw[m.header_start:m.body_start]
    if section.text == "TEXT":
        return raw[m.body_start:m.body_end]
    if section.text == "HEADER.FIELDS":
        return _header_fields(raw, m.header_start, m.body_start, section.fields, True)
    if section.text == "HEADER.FIELDS.NOT":
        return _header_fields(raw, m.header_start, m.body_start, section.fields, False)
    return raw[m.header_start:m.body_end]


def section_bytes(raw: bytes, msg: ParsedMessage, section: Section) -> bytes | None:
    """The bytes of BODY[section] (before any <partial>), or None if absent."""
    root = msg.root
    if not section.part:
        if section.text is None:
            return raw
        return _message_text(raw, root, section)
    part = find_part(root, section.part)
    if part is None:
        return None
    if section.text is None:
        return raw[part.body_start:part.body_end]
    if section.text == "MIME":
        return raw[part.header_start:part.body_start]
    if part.message is None:
        return None
    return _message_text(raw, part.message, section)


def binary_section(raw: bytes, msg: ParsedMessage, part: tuple[int, ...]) -> bytes | None:
    """BINARY[part]: the part's body with its transfer encoding removed.

    Raises UnknownEncoding for an encoding mailbag cannot decode. BINARY[] is
    the whole message, its body decoded when it is a single part."""
    root = msg.root
    if not part:
        if root.type == "multipart" or root.message is not None or root.encoding in IDENTITY:
            return raw
        return raw[:root.body_start] + decode(raw[root.body_start:root.body_end], root.encoding)
    p = find_part(root, part)
    if p is None:
        return None
    body = raw[p.body_start:p.body_end]
    if p.type == "multipart" or p.message is not None:
        return body
    return decode(body, p.encoding)


def binary_size(raw: bytes, msg: ParsedMessage, part: tuple[int, ...]) -> int | None:
    """BINARY.SIZE[part]: the decoded size, None if the part does not exist."""
    data = binary_section(raw, msg, part)
    return None if data is None else len(data)
