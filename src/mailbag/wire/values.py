"""IMAP data values and their encoding on the wire (RFC 9051 §4, §9 "astring",
"nstring", "literal", "quoted").

Response builders pass trees of these values to :func:`encode`; the encoder
chooses atom, quoted string or literal so that any byte string round-trips.
mime/ uses the same encoder to pre-render ENVELOPE and BODYSTRUCTURE at ingest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Union

# RFC 9051 ATOM-CHAR excludes atom-specials: ( ) { SP CTL % * " \ ]
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]')


@dataclass(frozen=True, slots=True)
class Atom:
    """Sent verbatim (flags, keywords, response-item names, numbers as text)."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Literal:
    """Always sent as a literal: {n}CRLF + data, or ~{n} when binary is set."""

    data: bytes
    binary: bool = False


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes that are already valid IMAP syntax (a pre-rendered ENVELOPE...)."""

    data: bytes


NIL = Atom(b"NIL")

Value = Union[None, int, str, bytes, Atom, Literal, Raw, "list[Value]", "tuple[Value, ...]"]


def is_atom_safe(data: bytes) -> bool:
    """True when *data* may be sent as an atom."""
    return bool(data) and all(0x20 < c < 0x7F and c not in _ATOM_SPECIALS for c in data)


# What may be sent quoted: printable ASCII, at most 1 KiB. TAB is not a
# QUOTED-CHAR; some clients accept it, but a literal is always safe. One regex
# match, not a per-byte loop: ingest renders ~45 strings a message.
_QUOTABLE = re.compile(rb"[\x20-\x7e]{0,1024}\Z")


def quoted_or_literal(data: bytes) -> bytes:
    """A string: quoted when it can be, else a literal (8-bit, CR, LF, NUL, long)."""
    if _QUOTABLE.match(data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def astring(data: bytes | str) -> bytes:
    """An astring: atom when safe (plus ']' is fine in astrings), else string."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if (
        data
        and all(0x20 < c < 0x7F and (c not in _ATOM_SPECIALS or c == 0x5D) for c in data)
        and data.upper() != b"NIL"
    ):
        return data
    return quoted_or_literal(data)


def nstring(data: bytes | str | None) -> bytes:
    """A string or NIL."""
    if data is None:
        return b"NIL"
    if isinstance(data, str):
        data = data.encode("utf-8")
    return quoted_or_literal(data)


def _encode_into(value: Value, out: list[bytes]) -> None:
    if value is None:
        out.append(b"NIL")
    elif isinstance(value, bool):
        raise TypeError("booleans have no IMAP encoding")
    elif isinstance(value, int):
        out.append(b"%d" % value)
    elif isinstance(value, Atom):
        out.append(value.value)
    elif isinstance(value, Raw):
        out.append(value.data)
    elif isinstance(value, Literal):
        prefix = b"~" if value.binary else b""
        out.append(prefix + b"{%d}\r\n" % len(value.data))
        out.append(value.data)
    elif isinstance(value, str):
        out.append(quoted_or_literal(value.encode("utf-8")))
    elif isinstance(value, bytes):
        out.append(quoted_or_literal(value))
    elif isinstance(value, (list, tuple)):
        out.append(b"(")
        for i, item in enumerate(value):
            if i:
                out.append(b" ")
            _encode_into(item, out)
        out.append(b")")
    else:  # pragma: no cover - guarded by typing
        raise TypeError(f"cannot encode {type(value).__name__}")


def encode(value: Value) -> bytes:
    """Encode one value (a list becomes a parenthesized list)."""
    out: list[bytes] = []
    _encode_into(value, out)
    return b"".join(out)


def encode_chunks(values: Iterable[Value]) -> Iterator[bytes]:
    """Encode values separated by spaces, yielding big literals as their own chunk."""
    for i, value in enumerate(values):
        out: list[bytes] = []
        if i:
            out.append(b" ")
        _encode_into(value, out)
        yield from out
