"""SEARCH criteria: "search-key" of RFC 9051 §6.4.4/§9 plus the RFC 3501 keys
NEW, OLD and RECENT, CONDSTORE MODSEQ (RFC 7162 §3.1.5), WITHIN OLDER/YOUNGER
(RFC 5032), the SEARCHRES '$' set (RFC 5182), SAVEDBEFORE/SAVEDON/SAVEDSINCE
and SAVEDATESUPPORTED (RFC 8514 §4), EMAILID/THREADID (RFC 8474 §6);
"search-return-opts" of
ESEARCH (RFC 4731) with SAVE (RFC 5182).
"""

from __future__ import annotations

from typing import Literal, cast

from mailbag.wire.commands import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchObjectId,
    SearchOr,
    SearchReturn,
    SearchSaveDate,
    SearchSet,
    SearchSize,
    SearchText,
    SearchWithin,
)
from mailbag.wire.lexer import DIGITS, ParseError, Reader

# NOT/OR recurse without parentheses; Python's stack must survive even a line
# full of "NOT NOT NOT ...", while long OR chains from real clients still pass.
MAX_KEY_DEPTH = 200

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True), "OLD": ("\\Recent", False),
}
_HEADER_KEYS = {"FROM", "TO", "CC", "BCC", "SUBJECT"}
_DATE_KEYS: dict[str, tuple[Literal["BEFORE", "ON", "SINCE"], bool]] = {
    "BEFORE": ("BEFORE", False), "ON": ("ON", False), "SINCE": ("SINCE", False),
    "SENTBEFORE": ("BEFORE", True), "SENTON": ("ON", True), "SENTSINCE": ("SINCE", True),
}
_SAVED_KEYS: dict[str, Literal["BEFORE", "ON", "SINCE"]] = {
    "SAVEDBEFORE": "BEFORE", "SAVEDON": "ON", "SAVEDSINCE": "SINCE",
}
# RFC 8474 §7: objectid = 1*255(ALPHA / DIGIT / "_" / "-")
_OBJECTID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE")
_SEQ_START = DIGITS | frozenset(b"*$")


class SearchParser:
    def __init__(self, reader: Reader, max_nesting: int) -> None:
        self.r = reader
        self.max_nesting = max_nesting

    def keys(self) -> SearchAnd:
        """1*(SP search-key) up to the end of the command."""
        keys: list[SearchKey] = []
        while not self.r.at_end():
            self.r.sp("a space before a search key")
            keys.append(self.key(0, 0))
        if not keys:
            raise ParseError("SEARCH: missing search criteria")
        return SearchAnd(tuple(keys))

    def key(self, depth: int, parens: int) -> SearchKey:
        r = self.r
        if depth > MAX_KEY_DEPTH:
            raise ParseError("SEARCH: criteria nested too deeply", code="LIMIT")
        c = r.peek()
        if c == 0x28:  # '('
            if parens + 1 > self.max_nesting:
                raise ParseError("SEARCH: too many nested parentheses", code="LIMIT")
            r.pos += 1
            keys = [self.key(depth + 1, parens + 1)]
            while r.peek() == 0x20:
                r.pos += 1
                keys.append(self.key(depth + 1, parens + 1))
            r.expect(b")", "')' closing the search key list")
            return SearchAnd(tuple(keys))
        if c is not None and c in _SEQ_START:
            return SearchSet(False, r.sequence_set())
        name = r.keyword("a search key")
        if name == "ALL":
            return SearchAll()
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return SearchFlag(flag, present)
        if name == "NEW":
            return SearchAnd((SearchFlag("\\Recent", True), SearchFlag("\\Seen", False)))
        if name in ("KEYWORD", "UNKEYWORD"):
            r.sp(f"a space after {name}")
            kw = r.atom(f"a keyword after {name}").decode("ascii")
            return SearchFlag(kw, name == "KEYWORD")
        if name in _HEADER_KEYS:
            r.sp(f"a space after {name}")
            return SearchHeader(name.encode(), r.astring(f"a string after {name}"))
        if name in ("BODY", "TEXT"):
            r.sp(f"a space after {name}")
            return SearchText("BODY" if name == "BODY" else "TEXT",
                              r.astring(f"a string after {name}"))
        if name == "HEADER":
            r.sp("a space after HEADER")
            field = r.astring("a header field name after HEADER").upper()
            r.sp("a space after the HEADER field name")
            return SearchHeader(field, r.astring("a string after the HEADER field name"))
        if name in _DATE_KEYS:
            op, sent = _DATE_KEYS[name]
            r.sp(f"a space after {name}")
            return SearchDate(op, sent, r.date(f"a date after {name}"))
        if name in _SAVED_KEYS:
            r.sp(f"a space after {name}")
            return SearchSaveDate(_SAVED_KEYS[name], r.date(f"a date after {name}"))
        if name == "SAVEDATESUPPORTED":
            # Every mailbag mailbox keeps save dates (RFC 8514 §4).
            return SearchAll()
        if name in ("EMAILID", "THREADID"):
            r.sp(f"a space after {name}")
            oid = r.take_while(_OBJECTID_CHARS)
            if not 1 <= len(oid) <= 255:
                raise r.fail(f"an object id (letters, digits, '_', '-') after {name}")
            return SearchObjectId("EMAILID" if name == "EMAILID" else "THREADID",
                                  oid.decode("ascii"))
        if name in ("LARGER", "SMALLER"):
            r.sp(f"a space after {name}")
            return SearchSize(name == "LARGER", r.number(f"a size after {name}", wide=True))
        if name in ("OLDER", "YOUNGER"):
            r.sp(f"a space after {name}")
            return SearchWithin(name == "OLDER",
                                r.number(f"a number of seconds after {name}", nonzero=True))
        if name == "UID":
            r.sp("a space after UID")
            return SearchSet(True, r.sequence_set("a UID set after UID"))
        if name == "NOT":
            r.sp("a space after NOT")
            return SearchNot(self.key(depth + 1, parens))
        if name == "OR":
            r.sp("a space after OR")
            left = self.key(depth + 1, parens)
            r.sp("a space before the second OR operand")
            return SearchOr(left, self.key(depth + 1, parens))
        if name == "MODSEQ":
            return self._modseq()
        raise ParseError(f"SEARCH: unknown search key {name}")

    def _modseq(self) -> SearchModseq:
        r = self.r
        r.sp("a space after MODSEQ")
        if r.peek() == 0x22:
            # entry-name entry-type-req: only meaningful for per-flag modseqs,
            # which mailbag does not keep; parsed and ignored (RFC 7162 §3.1.5)
            entry = r.quoted("a MODSEQ entry name")
            if not entry.lower().startswith(b"/flags/"):
                raise ParseError("SEARCH: MODSEQ entry name must start with /flags/")
            r.sp("a space after the MODSEQ entry name")
            kind = r.keyword("a MODSEQ entry type")
            if kind not in ("PRIV", "SHARED", "ALL"):
                raise ParseError("SEARCH: MODSEQ entry type must be priv, shared or all")
            r.sp("a space before the MODSEQ value")
        return SearchModseq(r.number("a mod-sequence value", wide=True))


def parse_search_returns(r: Reader) -> tuple[SearchReturn, ...]:
    """'(' [search-ret-opt *(SP search-ret-opt)] ')' after RETURN SP."""
    words = r.paren_list("a SEARCH RETURN option")
    for w in words:
        if w not in RETURN_OPTIONS:
            raise ParseError(f"SEARCH: unknown RETURN option {w}")
    return tuple(cast(SearchReturn, w) for w in dict.fromkeys(words))
