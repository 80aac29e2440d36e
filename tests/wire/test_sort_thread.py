"""Wire grammar of SORT/THREAD (RFC 5256, RFC 5957), ESORT/CONTEXT RETURN
options and CANCELUPDATE (RFC 5267), APPEND CATENATE (RFC 4469) and the IMAP
URLs it carries (RFC 5092). Every valid form is also fed byte at a time
(helpers.one); hypothesis checks that criteria round-trip and that chunking
and mutation never break the parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbag.wire import commands as c
from mailbag.wire.commands import SeqRange as R
from mailbag.wire.commands import SequenceSet as S
from mailbag.wire.imapurl import BadUrl, parse_message_url
from mailbag.wire.parser import Limits
from mailbag.wire.sort_grammar import SORT_KEYS

from .helpers import events, one
from .test_parser_properties import SMALL, mutate, run

ALL = c.SearchAnd((c.SearchAll(),))
SEEN = c.SearchAnd((c.SearchFlag("\\Seen", True),))


def crit(*pairs: tuple[str, bool]) -> tuple[c.SortCriterion, ...]:
    return tuple(c.SortCriterion(k, r) for k, r in pairs)  # type: ignore[arg-type]


CASES: list[tuple[bytes, object]] = [
    (b"a SORT (DATE) UTF-8 ALL", c.Sort("a", False, crit(("DATE", False)), "UTF-8", ALL)),
    (b"a sort (reverse arrival subject) us-ascii seen",
     c.Sort("a", False, crit(("ARRIVAL", True), ("SUBJECT", False)), "us-ascii", SEEN)),
    (b"a UID SORT (DISPLAYFROM REVERSE DISPLAYTO cc to size from) \"UTF-8\" ALL",
     c.Sort("a", True, crit(("DISPLAYFROM", False), ("DISPLAYTO", True), ("CC", False),
                            ("TO", False), ("SIZE", False), ("FROM", False)), "UTF-8", ALL)),
    (b"a SORT RETURN (MIN MAX) (ARRIVAL) US-ASCII 1:5",
     c.Sort("a", False, crit(("ARRIVAL", False)), "US-ASCII",
            c.SearchAnd((c.SearchSet(False, S((R(1, 5),))),)), ("MIN", "MAX"))),
    (b"a SORT RETURN () (ARRIVAL) US-ASCII ALL",
     c.Sort("a", False, crit(("ARRIVAL", False)), "US-ASCII", ALL, ())),
    (b"a SORT RETURN (PARTIAL 4:2 count) (ARRIVAL) US-ASCII ALL",
     c.Sort("a", False, crit(("ARRIVAL", False)), "US-ASCII", ALL, ("PARTIAL", "COUNT"),
            c.PartialRange(2, 4))),
    (b"a SORT RETURN (UPDATE CONTEXT ALL) (SIZE) UTF-8 ALL",
     c.Sort("a", False, crit(("SIZE", False)), "UTF-8", ALL, ("UPDATE", "CONTEXT", "ALL"))),
    (b"a SORT (SUBJECT) {5}\r\nUTF-8 SUBJECT {3}\r\nfoo",
     c.Sort("a", False, crit(("SUBJECT", False)), "UTF-8",
            c.SearchAnd((c.SearchHeader(b"SUBJECT", b"foo"),)))),
    (b"a THREAD REFERENCES UTF-8 ALL", c.Thread("a", False, "REFERENCES", "UTF-8", ALL)),
    (b"a uid thread orderedsubject us-ascii seen",
     c.Thread("a", True, "ORDEREDSUBJECT", "us-ascii", SEEN)),
    (b"a THREAD REFS UTF-8 ALL", c.Thread("a", False, "REFS", "UTF-8", ALL)),
    (b'a CANCELUPDATE "x1"', c.CancelUpdate("a", ("x1",))),
    (b'a cancelupdate "x1" {2}\r\ny2', c.CancelUpdate("a", ("x1", "y2"))),
    (b"a SEARCH RETURN (PARTIAL 1:6) ALL",
     c.Search("a", False, ALL, None, ("PARTIAL",), c.PartialRange(1, 6))),
    (b"a UID SEARCH RETURN (UPDATE ALL) SEEN",
     c.Search("a", True, SEEN, None, ("UPDATE", "ALL"))),
    (b"a SEARCH RETURN (MIN SAVE) CHARSET UTF-8 ALL",
     c.Search("a", False, ALL, "UTF-8", ("MIN", "SAVE"))),
    # CATENATE parts: TEXT literals (also literal8) and URLs, several messages
    (b'a APPEND box CATENATE (URL "/box/;uid=1")',
     c.Append("a", "box", (c.AppendMessage((), None, b"",
                                           parts=(c.CatenateUrl("/box/;uid=1"),)),))),
    (b'a APPEND box (\\Seen) catenate (TEXT {3+}\r\nabc url /b/;UID=2 TEXT ~{2}\r\nx\x00)',
     c.Append("a", "box", (c.AppendMessage(("\\Seen",), None, b"", parts=(
         c.CatenateText(b"abc"), c.CatenateUrl("/b/;UID=2"), c.CatenateText(b"x\x00", True))),))),
    (b'a APPEND box {2}\r\nhi CATENATE (TEXT {2}\r\nyo)',
     c.Append("a", "box", (c.AppendMessage((), None, b"hi"),
                           c.AppendMessage((), None, b"", parts=(c.CatenateText(b"yo"),))))),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[x[0][:40].decode("latin-1")
                                                            for x in CASES])
def test_valid_forms(line: bytes, expected: object) -> None:
    assert one(line + b"\r\n") == expected


BAD: list[bytes] = [
    b"a SORT ALL",                                   # no criteria
    b"a SORT () UTF-8 ALL",                          # empty criteria
    b"a SORT (FOO) UTF-8 ALL",
    b"a SORT (REVERSE) UTF-8 ALL",
    b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
    b"a SORT (DATE) UTF-8",                          # no search keys
    b"a SORT (DATE)",                                # no charset
    b"a SORT (DATE ) UTF-8 ALL",
    b"a SORT RETURN (BOGUS) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL 1) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL 1:*) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL *:1) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL 0:3) (DATE) UTF-8 ALL",
    b"a SORT RETURN (PARTIAL 1:2 PARTIAL 3:4) (DATE) UTF-8 ALL",
    b"a SORT RETURNS (ALL) (DATE) UTF-8 ALL",
    b"a SEARCH RETURN (PARTIAL 1) ALL",
    b"a SEARCH RETURN (PARTIAL 1:*) ALL",
    b"a THREAD",
    b"a THREAD REFERENCES",
    b"a THREAD REFERENCES UTF-8",
    b"a UID THREAD (REFERENCES) UTF-8 ALL",
    b"a CANCELUPDATE",
    b"a CANCELUPDATE x1",                             # tags are strings
    b'a APPEND box CATENATE ()',
    b'a APPEND box CATENATE (TEXT "abc")',            # TEXT takes a literal
    b'a APPEND box CATENATE (FILE "x")',
    b'a APPEND box CATENATE (URL "/b/;uid=1"',
    b'a APPEND box CATENATE',
]


@pytest.mark.parametrize("line", BAD, ids=[b.decode("latin-1") for b in BAD])
def test_bad_forms(line: bytes) -> None:
    got = events(line + b"\r\n")
    assert len(got) == 1
    assert isinstance(got[0], c.ProtocolError) and got[0].tag == "a" and got[0].status == "BAD", got
    assert events(line + b"\r\n", chunk=1) == got


def test_bad_catenate_prefix_refused_before_literal() -> None:
    """A synchronizing TEXT literal after a broken part is refused at once,
    so the client never sends its data."""
    got = events(b'a APPEND box CATENATE (URL "x" BOGUS {3}\r\n', keep_continuations=True)
    assert len(got) == 1 and isinstance(got[0], c.ProtocolError)


# ------------------------------------------------------------------ properties

criterion = st.tuples(st.sampled_from(sorted(SORT_KEYS)), st.booleans())


@settings(max_examples=200)
@given(st.lists(criterion, min_size=1, max_size=9), st.booleans(),
       st.sampled_from(["UTF-8", "us-ascii"]))
def test_sort_criteria_round_trip(pairs: list[tuple[str, bool]], uid: bool, charset: str) -> None:
    words = " ".join(("REVERSE " if rev else "") + key for key, rev in pairs)
    # keywords are case-insensitive: vary the case of the text
    text = "".join(ch.lower() if (i * 7) % 3 == 0 else ch for i, ch in enumerate(words))
    line = (b"t " + (b"UID " if uid else b"") + b"SORT (" + text.encode() + b") "
            + charset.encode() + b" ALL\r\n")
    assert one(line) == c.Sort("t", uid, crit(*pairs), charset, ALL)


@settings(max_examples=200)
@given(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1))
def test_partial_range_order_does_not_matter(a: int, b: int) -> None:
    one_way = one(b"t SEARCH RETURN (PARTIAL %d:%d) ALL\r\n" % (a, b))
    other = one(b"t SEARCH RETURN (PARTIAL %d:%d) ALL\r\n" % (b, a))
    assert isinstance(one_way, c.Search) and one_way == other
    assert one_way.partial == c.PartialRange(min(a, b), max(a, b))


SEEDS = [line + b"\r\n" for line, _ in CASES] + [line + b"\r\n" for line in BAD]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS),
       st.lists(st.tuples(st.integers(0, 2), st.integers(0, 200), st.integers(0, 255)),
                max_size=6),
       st.lists(st.integers(0, 200), max_size=8))
def test_mutated_commands_never_break_the_parser(seed: bytes, ops: list[tuple[int, int, int]],
                                                 cuts: list[int]) -> None:
    data = mutate(seed, ops)
    whole = run(data, [], Limits())
    assert run(data, cuts, Limits()) == whole
    run(data, cuts, SMALL)


# ------------------------------------------------------------------- IMAP URLs

def test_relative_url_with_everything() -> None:
    u = parse_message_url("/INBOX%20Sent;UIDVALIDITY=42/;UID=7/;SECTION=1.2.MIME/;PARTIAL=10.5")
    assert (u.user, u.mailbox, u.uidvalidity, u.uid) == (None, "INBOX Sent", 42, 7)
    assert u.section == c.Section((1, 2), "MIME")
    assert u.partial == c.Partial(10, 5)


def test_absolute_url_and_header_fields() -> None:
    u = parse_message_url("imap://fred;AUTH=*@mail.example:143/a/b%C3%A9/;uid=3"
                          "/;section=HEADER.FIELDS%20(FROM%20TO)")
    assert (u.user, u.mailbox, u.uid) == ("fred", "a/bé", 3)
    assert u.section == c.Section((), "HEADER.FIELDS", (b"FROM", b"TO"))
    assert u.partial is None


@pytest.mark.parametrize("url", [
    "", "/", "/box", "/box/;uid=0", "/box/;uid=x", "box/;uid=1", "/box;uidvalidity=0/;uid=1",
    "/box/;uid=1/;section=", "/box/;uid=1/;section=BOGUS", "/box/;uid=1/;partial=a",
    "/box/;uid=1/;urlauth=anonymous:internal:0123", "http://host/box/;uid=1",
    "imap://host", "/box/;uid=1?x", "/%FF/;uid=1",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(BadUrl):
        parse_message_url(url)
