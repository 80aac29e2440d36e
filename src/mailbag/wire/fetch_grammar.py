"""FETCH items: "fetch-att", "section", "section-binary", "partial" and the
ALL/FAST/FULL macros of RFC 9051 §6.4.5/§9 (with RFC 3501 RFC822.*), BINARY
(RFC 3516), MODSEQ and CHANGEDSINCE/VANISHED modifiers (RFC 7162), PREVIEW
(RFC 8970), SAVEDATE (RFC 8514), EMAILID/THREADID (RFC 8474).
"""

from __future__ import annotations

from typing import cast

from mailbag.wire.commands import (
    FetchAtt,
    FetchModifiers,
    FetchName,
    Partial,
    Section,
    SectionText,
)
from mailbag.wire.lexer import ParseError, Reader

_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_TEXT_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")

_SIMPLE = frozenset({
    "FLAGS", "ENVELOPE", "INTERNALDATE", "RFC822.SIZE", "UID", "BODYSTRUCTURE",
    "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "SAVEDATE", "EMAILID", "THREADID",
})

_FAST = (FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE"))
MACROS: dict[str, tuple[FetchAtt, ...]] = {
    "FAST": _FAST,
    "ALL": (*_FAST, FetchAtt("ENVELOPE")),
    "FULL": (*_FAST, FetchAtt("ENVELOPE"), FetchAtt("BODY")),
}


def parse_fetch_items(r: Reader) -> tuple[tuple[FetchAtt, ...], str | None]:
    """The item part of FETCH: a macro, one fetch-att or a parenthesized list."""
    if r.peek() == 0x28:
        r.pos += 1
        items = [_fetch_att(r)]
        while r.peek() == 0x20:
            r.pos += 1
            items.append(_fetch_att(r))
        r.expect(b")", "')' closing the FETCH item list")
        return tuple(items), None
    mark = r.mark()
    word = r.take_while(_NAME_CHARS).decode("ascii").upper()
    if word in MACROS and r.peek() in (None, 0x20):
        return MACROS[word], word
    r.reset(mark)
    return (_fetch_att(r),), None


def _fetch_att(r: Reader) -> FetchAtt:
    name = r.take_while(_NAME_CHARS).decode("ascii").upper()
    if not name:
        raise r.fail("a FETCH item")
    if name in _SIMPLE:
        return FetchAtt(cast(FetchName, name))
    if name in ("BODY", "BODY.PEEK"):
        if r.peek() != 0x5B:
            if name == "BODY.PEEK":
                raise r.fail("'[' after BODY.PEEK")
            return FetchAtt("BODY")
        section = _section(r)
        return FetchAtt("BODY[]", section, name == "BODY.PEEK", _partial(r))
    if name in ("BINARY", "BINARY.PEEK"):
        section = _binary_section(r, name)
        return FetchAtt("BINARY[]", section, name == "BINARY.PEEK", _partial(r))
    if name == "BINARY.SIZE":
        return FetchAtt("BINARY.SIZE", _binary_section(r, name))
    if name == "PREVIEW":
        return FetchAtt("PREVIEW", lazy=_preview_mods(r))
    raise ParseError(f"FETCH: unknown item {name}")


def _part_numbers(r: Reader) -> list[int]:
    parts = [r.number("a section part number", nonzero=True)]
    while r.peek() == 0x2E and r.peek(1) in range(0x30, 0x3A):
        r.pos += 1
        parts.append(r.number("a section part number", nonzero=True))
    return parts


def _section(r: Reader) -> Section:
    r.expect(b"[", "'['")
    if r.peek() == 0x5D:
        r.pos += 1
        return Section()
    parts: list[int] = []
    c = r.peek()
    if c is not None and 0x30 <= c <= 0x39:
        parts = _part_numbers(r)
        if r.peek() == 0x5D:
            r.pos += 1
            return Section(tuple(parts))
        r.expect(b".", "'.' or ']' after the section part")
    word = r.take_while(_TEXT_CHARS).decode("ascii").upper()
    fields: tuple[bytes, ...] = ()
    if word in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        r.sp(f"a space after {word}")
        r.expect(b"(", f"'(' starting the {word} list")
        names = [r.astring("a header field name").upper()]
        while r.peek() == 0x20:
            r.pos += 1
            names.append(r.astring("a header field name").upper())
        r.expect(b")", f"')' closing the {word} list")
        fields = tuple(names)
    elif word == "MIME":
        if not parts:
            raise ParseError("FETCH: MIME needs a section part number")
    elif word not in ("HEADER", "TEXT"):
        raise ParseError(f"FETCH: unknown section text {word or 'in BODY[...]'}")
    r.expect(b"]", "']' closing the section")
    return Section(tuple(parts), cast(SectionText, word), fields)


def _binary_section(r: Reader, name: str) -> Section:
    r.expect(b"[", f"'[' after {name}")
    parts: list[int] = []
    if r.peek() != 0x5D:
        parts = _part_numbers(r)
    r.expect(b"]", f"']' closing the {name} section")
    return Section(tuple(parts))


def _partial(r: Reader) -> Partial | None:
    if r.peek() != 0x3C:  # '<'
        return None
    r.pos += 1
    start = r.number("the partial start offset", wide=True)
    r.expect(b".", "'.' in the partial range")
    length = r.number("the partial length", nonzero=True, wide=True)
    r.expect(b">", "'>' closing the partial range")
    return Partial(start, length)


def _preview_mods(r: Reader) -> bool:
    """PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]; only LAZY exists.
    A following "(" may also be the command's fetch-modifiers, so look first."""
    if not (r.peek() == 0x20 and r.peek(1) == 0x28):
        return False
    mark = r.mark()
    r.pos += 2
    word = r.take_while(_NAME_CHARS).decode("ascii").upper()
    r.reset(mark)
    if word != "LAZY":
        return False
    r.pos += 1
    mods = r.paren_list("a PREVIEW modifier", allow_empty=False)
    for m in mods:
        if m != "LAZY":
            raise ParseError(f"FETCH: unknown PREVIEW modifier {m}")
    return True


def parse_fetch_modifiers(r: Reader, uid: bool) -> FetchModifiers:
    """'(' fetch-modifier *(SP fetch-modifier) ')' after the items' SP."""
    r.expect(b"(", "'(' starting FETCH modifiers")
    changedsince: int | None = None
    vanished = False
    while True:
        word = r.keyword("a FETCH modifier")
        if word == "CHANGEDSINCE":
            r.sp("a space after CHANGEDSINCE")
            changedsince = r.number("a mod-sequence value", nonzero=True, wide=True)
        elif word == "VANISHED":
            vanished = True
        else:
            raise ParseError(f"FETCH: unknown modifier {word}")
        if r.peek() != 0x20:
            break
        r.pos += 1
    r.expect(b")", "')' closing FETCH modifiers")
    if vanished and not uid:
        raise ParseError("FETCH: VANISHED is only allowed in UID FETCH")
    if vanished and changedsince is None:
        raise ParseError("FETCH: VANISHED requires CHANGEDSINCE")
    return FetchModifiers(changedsince, vanished)
