"""Grammar of SORT and THREAD (RFC 5256 §5 "sort", "thread"), the DISPLAYFROM
and DISPLAYTO sort keys (RFC 5957 §4), the RETURN options of ESORT and
CONTEXT=SEARCH/CONTEXT=SORT (RFC 5267 §6: "search-return-opt" with UPDATE,
CONTEXT and "PARTIAL" range), CANCELUPDATE (RFC 5267 §4.3) and the CATENATE
argument of APPEND (RFC 4469 §5: "cat-part", "text-literal", "url").

Each function reads from a wire.lexer.Reader positioned after the command
name and raises ParseError on bad syntax (a tagged BAD).
"""

from __future__ import annotations

from typing import cast

from mailbag.wire import commands as c
from mailbag.wire.lexer import ParseError, Reader
from mailbag.wire.search_grammar import SearchParser

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                       "DISPLAYFROM", "DISPLAYTO"})
CONTEXT_RETURNS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "CONTEXT",
                             "PARTIAL"})
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def parse_return_options(r: Reader, what: str) -> tuple[tuple[c.ContextReturn, ...],
                                                        c.PartialRange | None]:
    """'(' [search-return-opt *(SP search-return-opt)] ')' after RETURN SP,
    PARTIAL taking a range "n:m" (either order, both non-zero)."""
    r.expect(b"(", f"'(' starting the {what} RETURN options")
    options: list[c.ContextReturn] = []
    partial: c.PartialRange | None = None
    while r.peek() != 0x29:
        word = r.keyword(f"a {what} RETURN option")
        if word not in CONTEXT_RETURNS:
            raise ParseError(f"{what}: unknown RETURN option {word}")
        if word == "PARTIAL":
            if partial is not None:
                raise ParseError(f"{what}: PARTIAL given twice")
            r.sp("a space after PARTIAL")
            a = r.number("the first position of the PARTIAL range", nonzero=True)
            r.expect(b":", "':' in the PARTIAL range")
            b = r.number("the last position of the PARTIAL range", nonzero=True)
            partial = c.PartialRange(min(a, b), max(a, b))
        if word not in options:
            options.append(cast(c.ContextReturn, word))
        if r.peek() != 0x20:
            break
        r.pos += 1
    r.expect(b")", f"')' closing the {what} RETURN options")
    return tuple(options), partial


def _charset(r: Reader, what: str) -> str:
    r.sp(f"a space before the {what} charset")
    return r.astring(f"the {what} charset").decode("ascii", "replace")


def parse_sort(r: Reader, tag: str, uid: bool, max_nesting: int) -> c.Sort:
    """SP ["RETURN" SP ret-opts SP] sort-criteria SP charset 1*(SP search-key)."""
    returns: tuple[c.ContextReturn, ...] | None = None
    partial: c.PartialRange | None = None
    r.sp("a space after SORT")
    if r.peek() != 0x28:
        mark = r.mark()
        if r.take_while(_LETTERS).upper() != b"RETURN":
            r.reset(mark)
            raise r.fail("'(' starting the sort criteria, or RETURN")
        r.sp("a space after RETURN")
        returns, partial = parse_return_options(r, "SORT")
        r.sp("a space before the sort criteria")
    r.expect(b"(", "'(' starting the sort criteria")
    criteria: list[c.SortCriterion] = []
    while True:
        word = r.keyword("a sort key")
        reverse = word == "REVERSE"
        if reverse:
            r.sp("a space after REVERSE")
            word = r.keyword("a sort key after REVERSE")
        if word not in SORT_KEYS:
            raise ParseError(f"SORT: unknown sort key {word}")
        criteria.append(c.SortCriterion(cast(c.SortKeyName, word), reverse))
        if r.peek() != 0x20:
            break
        r.pos += 1
    r.expect(b")", "')' closing the sort criteria")
    charset = _charset(r, "SORT")
    key = SearchParser(r, max_nesting).keys()
    return c.Sort(tag, uid, tuple(criteria), charset, key, returns, partial)


def parse_thread(r: Reader, tag: str, uid: bool, max_nesting: int) -> c.Thread:
    """SP thread-alg SP search-criteria (charset first)."""
    r.sp("a space after THREAD")
    algorithm = r.keyword("a threading algorithm")
    charset = _charset(r, "THREAD")
    key = SearchParser(r, max_nesting).keys()
    return c.Thread(tag, uid, algorithm, charset, key)


def parse_cancelupdate(r: Reader, tag: str) -> c.CancelUpdate:
    """1*(SP tag-string), each a quoted string or literal."""
    tags: list[str] = []
    while True:
        r.sp("a space before a tag to cancel")
        tags.append(r.string("the tag of a SEARCH or SORT to cancel")
                    .decode("utf-8", "surrogateescape"))
        if r.at_end():
            return c.CancelUpdate(tag, tuple(tags))


def parse_catenate(r: Reader) -> tuple[c.CatenatePart, ...]:
    """'(' cat-part *(SP cat-part) ')' after CATENATE SP, where cat-part is
    TEXT SP literal (or literal8, RFC 3516) / URL SP astring."""
    r.expect(b"(", "'(' starting the CATENATE parts")
    parts: list[c.CatenatePart] = []
    while True:
        kind = r.keyword("TEXT or URL")
        r.sp(f"a space after {kind}")
        if kind == "TEXT":
            if not r.is_literal():
                raise r.fail("a literal after TEXT")
            data, binary = r.literal("the CATENATE text literal", allow_binary=True)
            parts.append(c.CatenateText(data, binary))
        elif kind == "URL":
            url = r.astring("an IMAP URL").decode("utf-8", "surrogateescape")
            parts.append(c.CatenateUrl(url))
        else:
            raise ParseError(f"APPEND: unknown CATENATE part {kind}")
        if r.peek() != 0x20:
            break
        r.pos += 1
    r.expect(b")", "')' closing the CATENATE parts")
    return tuple(parts)
