"""Header sections as bytes: finding their end, splitting them into fields,
unfolding, and decoding for display (RFC 5322 §2.2, §2.2.3 folding; RFC 2047
encoded words; RFC 6532 UTF-8 headers with a latin-1 fallback for junk).

Everything here works on the raw message bytes with absolute offsets and never
raises: a line without a colon is kept as a field whose name is the whole line
(as Dovecot does), so no byte of a header is ever lost.
"""

from __future__ import annotations

import email.header
import re
from dataclasses import dataclass


@dataclass(slots=True)
class HeaderField:
    """One field: ``raw[start:end]`` is the field with its folding and line end.

    Not frozen, though nothing changes one: a frozen dataclass sets each
    attribute through object.__setattr__, and ingest makes ~30 of these a
    message, the bulk of the ~8 % of ingest time that dataclass __init__
    methods took."""

    name: bytes          # as written, without trailing whitespace
    value: bytes         # everything after the colon, folding kept, line end stripped
    start: int
    end: int
    # The upper-cased name, for case-insensitive lookups; computed once
    # (ingest looks fields up ~250 times a message).
    key: bytes = b""


def line_end(raw: bytes, pos: int, end: int) -> int:
    """Offset just after the LF ending the line at *pos* (or *end*)."""
    nl = raw.find(b"\n", pos, end)
    return end if nl < 0 else nl + 1


def is_blank_line(raw: bytes, pos: int, nxt: int) -> bool:
    """True for an empty line (CRLF or bare LF)."""
    n = nxt - pos
    return (n == 1 and raw[pos] == 0x0A) or (n == 2 and raw[pos] == 0x0D and raw[pos + 1] == 0x0A)


# One field: a first line that is not the blank line ending the header,
# then its continuation lines (RFC 5322 §2.2.3). Group 1 is the name when the
# first line has a colon; group 2 the value up to the field's line end.
_FIELD = re.compile(rb"(?!\r?\n)(?:([^:\n]*):)?([^\n]*(?:\n[ \t][^\n]*)*)\n?")


def split_fields(raw: bytes, start: int, end: int) -> list[HeaderField]:
    """Split the header section ``raw[start:end]`` into fields.

    *end* is where the body starts; a trailing blank line is ignored.
    """
    fields: list[HeaderField] = []
    pos = start
    for m in _FIELD.finditer(raw, start, end):
        # A match further on means a blank line came first: the header ends.
        at, stop = m.span()
        if at != pos or stop == at:
            break
        pos = stop
        name, value = m.group(1, 2)
        if name is None:
            # No colon on the first line: the whole field is its name, as
            # Dovecot keeps it, so that no byte of the header is lost.
            whole = raw[at:stop].rstrip(b"\r\n")
            fields.append(HeaderField(whole, b"", at, stop, whole.upper()))
            continue
        if value.endswith(b"\r"):
            value = value[:-1]
        name = name.rstrip(b" \t")
        fields.append(HeaderField(name, value, at, stop, name.upper()))
    return fields


_FOLD = re.compile(rb"\r?\n")


def unfold(value: bytes) -> bytes:
    """Remove the line breaks of folding (keeping the whitespace after them),
    drop NULs (they cannot travel in an IMAP string), and trim the leading
    whitespace after the colon and any trailing whitespace."""
    if b"\n" in value or b"\r" in value:
        value = _FOLD.sub(b"", value).replace(b"\r", b"")
    if b"\x00" in value:
        value = value.replace(b"\x00", b"")
    return value.strip(b" \t")


def to_str(data: bytes) -> str:
    """Header bytes as text: UTF-8 (RFC 6532) when valid, else latin-1 so that
    every byte maps to a character."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)[ \t\r\n]+(?==\?)")


def decode_words(text: str) -> str:
    """RFC 2047-decode *text*; undecodable words stay as written."""
    if "=?" not in text:
        return text
    # Whitespace between adjacent encoded words is not displayed (RFC 2047 §6.2).
    text = _BETWEEN_WORDS.sub(r"\1", text)
    return _ENCODED_WORD.sub(_decode_one, text)


def _decode_one(m: re.Match[str]) -> str:
    word = m.group(0)
    try:
        parts = email.header.decode_header(word)
    except Exception:
        return word
    out: list[str] = []
    for data, charset in parts:
        if isinstance(data, str):
            out.append(data)
            continue
        out.append(decode_charset(data, charset))
    return "".join(out)


def decode_charset(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset; unknown charsets are read as UTF-8 with
    replacement characters rather than failing."""
    name = (charset or "utf-8").strip().strip('"').lower()
    if "*" in name:  # RFC 2231 language suffix in an encoded word: "utf-8*en"
        name = name.split("*", 1)[0]
    if name in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "8bit"):
        return to_str(data)
    try:
        return data.decode(name, errors="replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", errors="replace")


def display_value(value: bytes) -> str:
    """A field value as a person reads it: unfolded, UTF-8/latin-1, RFC 2047-decoded."""
    return decode_words(to_str(unfold(value)))

