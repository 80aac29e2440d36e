"""Token reader for one framed IMAP command: the terminals of RFC 9051 §9
(atom, astring, quoted, literal, literal8 (RFC 3516), number, nz-number,
number64, sequence-set with '$' (RFC 5182), flag, date) and RFC 9051 §4.

The framing layer (wire/parser.py) hands over a command as text segments and
literals: every segment but the last ends with a literal marker ``{n}``,
``{n+}``, ``~{n}`` or ``~{n+}`` and literal *i* follows segment *i*. Line
endings are already removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from mailbag.wire.commands import SeqRange, SequenceSet
from mailbag.wire.dates import parse_date

# ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ]
ATOM_CHARS = frozenset(range(0x21, 0x7F)) - frozenset(b'(){%*"\\]')
ASTRING_CHARS = ATOM_CHARS | frozenset(b"]")
TAG_CHARS = ASTRING_CHARS - frozenset(b"+")
LIST_CHARS = ASTRING_CHARS | frozenset(b"%*")
# Mailbox names sent as bare 8-bit atoms are not in the grammar, but clients
# that speak UTF-8 send them; accepting them loses nothing.
EIGHT_BIT = frozenset(range(0x80, 0x100))
_ASTRING_ATOM = ASTRING_CHARS | EIGHT_BIT
_LIST_ATOM = LIST_CHARS | EIGHT_BIT
DIGITS = frozenset(b"0123456789")
_DATE_CHARS = DIGITS | frozenset(b"-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

LITERAL_MARKER = re.compile(rb"(~?)\{(\d+)(\+?)\}\Z")

MAX_NUMBER = 2**32 - 1
MAX_NUMBER64 = 2**63 - 1

SYSTEM_FLAGS = {f.upper(): f for f in
                ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")}


class ParseError(Exception):
    """A syntax error; becomes a tagged BAD (with ``code`` when set)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Incomplete(Exception):
    """The command goes on in a literal that has not arrived yet."""


def find_literal_marker(line: bytes) -> tuple[int, bool, bool] | None:
    """(size, synchronizing, binary) when *line* ends with a literal marker."""
    m = LITERAL_MARKER.search(line[-64:])
    if m is None:
        return None
    digits = m.group(2)
    # absurd sizes stay absurd without converting a huge decimal
    size = int(digits) if len(digits) <= 20 else MAX_NUMBER64 + 1
    return size, not m.group(3), bool(m.group(1))


class Reader:
    """A cursor over the segments and literals of one command."""

    __slots__ = ("_segs", "_lits", "_i", "_text", "pos")

    def __init__(self, segments: Sequence[bytes], literals: Sequence[bytes]) -> None:
        self._segs = segments
        self._lits = literals
        self._i = 0
        self._text = segments[0] if segments else b""
        self.pos = 0

    # -- position -----------------------------------------------------------
    def mark(self) -> tuple[int, int]:
        return (self._i, self.pos)

    def reset(self, mark: tuple[int, int]) -> None:
        self._i, self.pos = mark
        self._text = self._segs[self._i]

    def peek(self, offset: int = 0) -> int | None:
        p = self.pos + offset
        return self._text[p] if p < len(self._text) else None

    def startswith(self, data: bytes) -> bool:
        return self._text.startswith(data, self.pos)

    def at_end(self) -> bool:
        return self.pos >= len(self._text) and self._i >= len(self._segs) - 1

    def _describe_here(self) -> str:
        c = self.peek()
        if c is None:
            return "end of line"
        if 0x20 < c < 0x7F:
            return f"'{chr(c)}'"
        return "space" if c == 0x20 else f"byte 0x{c:02x}"

    def fail(self, expected: str) -> ParseError:
        return ParseError(f"expected {expected}, found {self._describe_here()}")

    def expect(self, token: bytes, expected: str) -> None:
        if not self.startswith(token):
            raise self.fail(expected)
        self.pos += len(token)

    def sp(self, expected: str = "a space") -> None:
        self.expect(b" ", expected)

    def end(self, command: str) -> None:
        if not self.at_end():
            raise ParseError(f"{command}: unexpected extra arguments at "
                             f"{self._describe_here()}")

    def take_while(self, chars: frozenset[int]) -> bytes:
        text, start = self._text, self.pos
        p = start
        n = len(text)
        while p < n and text[p] in chars:
            p += 1
        self.pos = p
        return text[start:p]

    # -- terminals ----------------------------------------------------------
    def atom(self, expected: str) -> bytes:
        data = self.take_while(ATOM_CHARS)
        if not data:
            raise self.fail(expected)
        return data

    def keyword(self, expected: str) -> str:
        """An atom as an upper-case str (command names, options, items)."""
        return self.atom(expected).decode("ascii").upper()

    def number(self, expected: str, *, nonzero: bool = False, wide: bool = False) -> int:
        digits = self.take_while(DIGITS)
        if not digits:
            raise self.fail(expected)
        limit = MAX_NUMBER64 if wide else MAX_NUMBER
        if len(digits) > 20 or int(digits) > limit:
            raise ParseError(f"{expected}: number out of range")
        value = int(digits)
        if nonzero and value == 0:
            raise ParseError(f"{expected}: must not be zero")
        return value

    def quoted(self, expected: str) -> bytes:
        if self.peek() != 0x22:
            raise self.fail(expected)
        text = self._text
        out = bytearray()
        p = self.pos + 1
        n = len(text)
        while p < n:
            c = text[p]
            if c == 0x22:
                self.pos = p + 1
                return bytes(out)
            if c == 0x5C:
                if p + 1 < n and text[p + 1] in (0x22, 0x5C):
                    out.append(text[p + 1])
                    p += 2
                    continue
                raise ParseError(f"{expected}: backslash must escape '\"' or '\\'")
            if c == 0:
                raise ParseError(f"{expected}: NUL in quoted string")
            out.append(c)
            p += 1
        raise ParseError(f"{expected}: unterminated quoted string")

    def literal(self, expected: str, *, allow_binary: bool = False) -> tuple[bytes, bool]:
        """(data, binary). The marker must end its segment."""
        m = LITERAL_MARKER.match(self._text, self.pos)
        if m is None or m.end() != len(self._text):
            raise self.fail(expected)
        binary = bool(m.group(1))
        if binary and not allow_binary:
            raise ParseError(f"{expected}: literal8 (~{{n}}) is not allowed here")
        if self._i >= len(self._lits):
            raise Incomplete
        data = self._lits[self._i]
        self._i += 1
        self._text = self._segs[self._i]
        self.pos = 0
        return data, binary

    def is_literal(self) -> bool:
        return self.startswith(b"{") or self.startswith(b"~{")

    def string(self, expected: str) -> bytes:
        if self.peek() == 0x22:
            return self.quoted(expected)
        return self.literal(expected)[0]

    def astring(self, expected: str) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted(expected)
        if c == 0x7B or self.startswith(b"~{"):
            return self.literal(expected)[0]
        data = self.take_while(_ASTRING_ATOM)
        if not data:
            raise self.fail(expected)
        return data

    def nstring(self, expected: str) -> bytes | None:
        c = self.peek()
        if c in (0x22, 0x7B):
            return self.string(expected)
        word = self.take_while(ATOM_CHARS)
        if word.upper() != b"NIL":
            raise ParseError(f"{expected}: expected a string or NIL")
        return None

    def list_mailbox(self, expected: str) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted(expected)
        if c == 0x7B or self.startswith(b"~{"):
            return self.literal(expected)[0]
        data = self.take_while(_LIST_ATOM)
        if not data:
            raise self.fail(expected)
        return data

    def mailbox(self, expected: str = "a mailbox name") -> str:
        return self.astring(expected).decode("utf-8", "surrogateescape")

    def _seq_number(self, expected: str) -> int | None:
        if self.peek() == 0x2A:
            self.pos += 1
            return None
        return self.number(expected, nonzero=True)

    def sequence_set(self, expected: str = "a sequence set") -> SequenceSet:
        if self.peek() == 0x24:  # '$'
            self.pos += 1
            return SequenceSet((), saved=True)
        ranges: list[SeqRange] = []
        while True:
            a = self._seq_number(expected)
            b = a
            if self.peek() == 0x3A:  # ':'
                self.pos += 1
                b = self._seq_number(expected)
            ranges.append(SeqRange(a, b))
            if self.peek() != 0x2C:  # ','
                return SequenceSet(tuple(ranges))
            self.pos += 1

    def flag(self, expected: str = "a flag") -> str:
        if self.peek() == 0x5C:  # '\'
            self.pos += 1
            name = "\\" + self.atom(expected).decode("ascii")
            return SYSTEM_FLAGS.get(name.upper(), name)
        return self.atom(expected).decode("ascii")

    def flag_list(self, expected: str = "a flag list") -> tuple[str, ...]:
        self.expect(b"(", expected)
        flags: list[str] = []
        if self.peek() != 0x29:
            flags.append(self.flag())
            while self.peek() == 0x20:
                self.pos += 1
                flags.append(self.flag())
        self.expect(b")", "')' closing the flag list")
        return tuple(flags)

    def date(self, expected: str = "a date") -> date:
        if self.peek() == 0x22:
            text = self.quoted(expected)
        else:
            text = self.take_while(_DATE_CHARS)
            if not text:
                raise self.fail(expected)
        try:
            return parse_date(text)
        except ValueError as exc:
            raise ParseError(f"{expected}: {exc}") from None

    def paren_list(self, item_expected: str, allow_empty: bool = True) -> list[str]:
        """'(' [atom *(SP atom)] ')' as upper-case words."""
        self.expect(b"(", "'('")
        words: list[str] = []
        if self.peek() == 0x29:
            if not allow_empty:
                raise self.fail(item_expected)
        else:
            words.append(self.keyword(item_expected))
            while self.peek() == 0x20:
                self.pos += 1
                words.append(self.keyword(item_expected))
        self.expect(b")", "')'")
        return words
