"""Table-driven tests: one valid command form per row -> the expected event."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mailbag.wire import commands as c
from mailbag.wire.commands import FetchAtt as FA
from mailbag.wire.commands import SeqRange as R
from mailbag.wire.commands import SequenceSet as S

from .helpers import one

ALL_SET = S((R(1, None),))
ONE = S((R(1, 1),))
SEEN = c.SearchFlag("\\Seen", True)


def q(*keys: c.SearchKey) -> c.SearchAnd:
    return c.SearchAnd(keys)


CASES: list[tuple[bytes, object]] = [
    # --- any state
    (b"a CAPABILITY", c.Capability("a")),
    (b"a capability", c.Capability("a")),
    (b"A1.x] NoOp", c.Noop("A1.x]")),
    (b"a LOGOUT", c.Logout("a")),
    (b"a STARTTLS", c.StartTLS("a")),
    (b"a ID NIL", c.Id("a", None)),
    (b'a ID ("name" "imaplib" "version" NIL)', c.Id("a", (("name", "imaplib"), ("version", None)))),
    (b"a ID ()", c.Id("a", ())),
    # --- not authenticated
    (b"a AUTHENTICATE plain", c.Authenticate("a", "PLAIN", None)),
    (b"a AUTHENTICATE PLAIN =", c.Authenticate("a", "PLAIN", b"")),
    (b"a AUTHENTICATE PLAIN AGZyZWQAcHc=", c.Authenticate("a", "PLAIN", b"\0fred\0pw")),
    (b"a LOGIN fred secret", c.Login("a", b"fred", b"secret")),
    (b'a LOGIN "fred" "se \\"cr\\\\et"', c.Login("a", b"fred", b'se "cr\\et')),
    (b"a LOGIN {4}\r\nfred {3+}\r\npw!", c.Login("a", b"fred", b"pw!")),
    # --- authenticated
    (b"a ENABLE CONDSTORE utf8=accept", c.Enable("a", ("CONDSTORE", "UTF8=ACCEPT"))),
    (b"a SELECT INBOX", c.Select("a", "INBOX")),
    (b"a select inbox", c.Select("a", "inbox")),
    (b"a EXAMINE \"Sent Items\"", c.Select("a", "Sent Items", readonly=True)),
    (b"a SELECT INBOX (CONDSTORE)", c.Select("a", "INBOX", condstore=True)),
    (b"a SELECT INBOX (QRESYNC (67890007 20050715194045000))",
     c.Select("a", "INBOX", qresync=c.QresyncParams(67890007, 20050715194045000))),
    (b"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
     c.Select("a", "INBOX", qresync=c.QresyncParams(
         67890007, 90060115194045000, S((R(41, 211), R(214, 541)))))),
    (b"a SELECT INBOX (CONDSTORE QRESYNC (1 2 1:* (1:2 3:4)))",
     c.Select("a", "INBOX", condstore=True, qresync=c.QresyncParams(
         1, 2, ALL_SET, (S((R(1, 2),)), S((R(3, 4),)))))),
    (b"a SELECT INBOX (QRESYNC (1 2 (1:2 3:4)))",
     c.Select("a", "INBOX", qresync=c.QresyncParams(1, 2, None, (S((R(1, 2),)), S((R(3, 4),)))))),
    (b"a SELECT \"caf\xc3\xa9\"", c.Select("a", "café")),
    (b"a SELECT \"\xff\"", c.Select("a", "\udcff")),
    (b"a CREATE foo/bar", c.Create("a", "foo/bar")),
    (b"a CREATE Drafts2 (USE (\\drafts \\Sent))", c.Create("a", "Drafts2", ("\\Drafts", "\\Sent"))),
    (b"a DELETE foo", c.Delete("a", "foo")),
    (b"a RENAME foo \"bar baz\"", c.Rename("a", "foo", "bar baz")),
    (b"a SUBSCRIBE foo", c.Subscribe("a", "foo")),
    (b"a UNSUBSCRIBE {3}\r\nfoo", c.Unsubscribe("a", "foo")),
    (b'a LIST "" *', c.List("a", "", ("*",))),
    (b'a LIST "" %/x]', c.List("a", "", ("%/x]",))),
    (b'a LIST ~/Mail/ "%"', c.List("a", "~/Mail/", ("%",))),
    (b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" (INBOX "Sent*")',
     c.List("a", "", ("INBOX", "Sent*"), ("SUBSCRIBED", "RECURSIVEMATCH"), extended=True)),
    (b'a LIST "" * RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))',
     c.List("a", "", ("*",), (), ("CHILDREN", "SPECIAL-USE"), ("MESSAGES", "UNSEEN"), True)),
    (b'a LIST () "" * RETURN ()', c.List("a", "", ("*",), extended=True)),
    (b'a LSUB "" *', c.Lsub("a", "", "*")),
    (b"a NAMESPACE", c.Namespace("a")),
    (b"a STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ)",
     c.Status("a", "INBOX", ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED",
                             "SIZE", "RECENT", "HIGHESTMODSEQ"))),
    (b"a APPEND INBOX {5}\r\nhello",
     c.Append("a", "INBOX", (c.AppendMessage((), None, b"hello"),))),
    (b"a APPEND INBOX (\\Seen $Forwarded) \" 7-Feb-1994 21:52:25 -0800\" {2+}\r\nhi",
     c.Append("a", "INBOX", (c.AppendMessage(
         ("\\Seen", "$Forwarded"),
         datetime(1994, 2, 7, 21, 52, 25, tzinfo=timezone(-timedelta(hours=8))), b"hi"),))),
    (b"a APPEND INBOX \"17-Jul-1996 02:44:25 +0130\" ~{3}\r\na\0b",
     c.Append("a", "INBOX", (c.AppendMessage(
         (), datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=1, minutes=30))),
         b"a\0b", binary=True),))),
    (b"a APPEND x () {1}\r\n1 (\\Draft) {1+}\r\n2 ~{1+}\r\n3",
     c.Append("a", "x", (c.AppendMessage((), None, b"1"),
                         c.AppendMessage(("\\Draft",), None, b"2"),
                         c.AppendMessage((), None, b"3", True)))),
    (b"a IDLE", c.Idle("a")),
    # --- selected
    (b"a CHECK", c.Check("a")),
    (b"a CLOSE", c.Close("a")),
    (b"a UNSELECT", c.Unselect("a")),
    (b"a EXPUNGE", c.Expunge("a")),
    (b"a UID EXPUNGE 3000:3002", c.Expunge("a", S((R(3000, 3002),)))),
    (b"a uid expunge $", c.Expunge("a", S((), saved=True))),
    (b"a COPY 2:4 MEETING", c.Copy("a", False, S((R(2, 4),)), "MEETING")),
    (b"a UID COPY 1:* Trash", c.Copy("a", True, ALL_SET, "Trash")),
    (b"a MOVE $ Archive", c.Move("a", False, S((), saved=True), "Archive")),
    (b"a UID MOVE 4294967295 x", c.Move("a", True, S((R(4294967295, 4294967295),)), "x")),
    # STORE
    (b"a STORE 2:4 +FLAGS (\\Deleted)",
     c.Store("a", False, S((R(2, 4),)), "+", False, ("\\Deleted",))),
    (b"a STORE 1 -flags.silent \\SEEN $Junk",
     c.Store("a", False, ONE, "-", True, ("\\Seen", "$Junk"))),
    (b"a UID STORE 1:* FLAGS ()", c.Store("a", True, ALL_SET, "", False, ())),
    (b"a STORE 1 (UNCHANGEDSINCE 12345) FLAGS.SILENT (\\Answered)",
     c.Store("a", False, ONE, "", True, ("\\Answered",), 12345)),
    (b"a STORE 1 FLAGS (\\X-Ext)", c.Store("a", False, ONE, "", False, ("\\X-Ext",))),
    # FETCH
    (b"a FETCH 1 FLAGS", c.Fetch("a", False, ONE, (FA("FLAGS"),))),
    (b"a FETCH 1:* ALL", c.Fetch("a", False, ALL_SET, (
        FA("FLAGS"), FA("INTERNALDATE"), FA("RFC822.SIZE"), FA("ENVELOPE")), "ALL")),
    (b"a FETCH 1 fast", c.Fetch("a", False, ONE, (
        FA("FLAGS"), FA("INTERNALDATE"), FA("RFC822.SIZE")), "FAST")),
    (b"a FETCH 1 FULL", c.Fetch("a", False, ONE, (
        FA("FLAGS"), FA("INTERNALDATE"), FA("RFC822.SIZE"), FA("ENVELOPE"), FA("BODY")), "FULL")),
    (b"a FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822.SIZE UID BODYSTRUCTURE BODY RFC822 "
     b"RFC822.HEADER RFC822.TEXT MODSEQ PREVIEW SAVEDATE EMAILID THREADID)",
     c.Fetch("a", False, ONE, tuple(FA(n) for n in (  # type: ignore[arg-type]
         "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "UID", "BODYSTRUCTURE", "BODY",
         "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "PREVIEW", "SAVEDATE",
         "EMAILID", "THREADID")))),
    (b"a FETCH 1 BODY[]", c.Fetch("a", False, ONE, (FA("BODY[]", c.Section()),))),
    (b"a FETCH 1 body.peek[]<0.1024>",
     c.Fetch("a", False, ONE, (FA("BODY[]", c.Section(), True, c.Partial(0, 1024)),))),
    (b"a FETCH 1 (BODY[HEADER] BODY[TEXT] BODY[1.2.3] BODY[2.MIME] BODY[3.HEADER])",
     c.Fetch("a", False, ONE, (
         FA("BODY[]", c.Section((), "HEADER")), FA("BODY[]", c.Section((), "TEXT")),
         FA("BODY[]", c.Section((1, 2, 3))), FA("BODY[]", c.Section((2,), "MIME")),
         FA("BODY[]", c.Section((3,), "HEADER"))))),
    (b"a FETCH 1 BODY.PEEK[HEADER.FIELDS (date From \"X-Y\")]",
     c.Fetch("a", False, ONE, (FA("BODY[]", c.Section(
         (), "HEADER.FIELDS", (b"DATE", b"FROM", b"X-Y")), True),))),
    (b"a FETCH 1 BODY[1.HEADER.FIELDS.NOT (Received)]<10.20>",
     c.Fetch("a", False, ONE, (FA("BODY[]", c.Section(
         (1,), "HEADER.FIELDS.NOT", (b"RECEIVED",)), False, c.Partial(10, 20)),))),
    (b"a FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<0.5> BINARY.SIZE[3] BINARY[])",
     c.Fetch("a", False, ONE, (
         FA("BINARY[]", c.Section((1,))), FA("BINARY[]", c.Section((1, 2)), True, c.Partial(0, 5)),
         FA("BINARY.SIZE", c.Section((3,))), FA("BINARY[]", c.Section())))),
    (b"a FETCH 1 (PREVIEW (LAZY) FLAGS)",
     c.Fetch("a", False, ONE, (FA("PREVIEW", lazy=True), FA("FLAGS")))),
    (b"a FETCH 1 PREVIEW (CHANGEDSINCE 7)",
     c.Fetch("a", False, ONE, (FA("PREVIEW"),), None, c.FetchModifiers(7))),
    (b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
     c.Fetch("a", True, ALL_SET, (FA("FLAGS"),), None, c.FetchModifiers(12345, True))),
    (b"a FETCH 2,4:7,*:9 UID", c.Fetch("a", False, S((R(2, 2), R(4, 7), R(None, 9))), (FA("UID"),))),
    # SEARCH
    (b"a SEARCH ALL", c.Search("a", False, q(c.SearchAll()))),
    (b"a UID SEARCH UNSEEN", c.Search("a", True, q(c.SearchFlag("\\Seen", False)))),
    (b"a SEARCH CHARSET UTF-8 TEXT {4}\r\n\xc3\xa9t\xc3",
     c.Search("a", False, q(c.SearchText("TEXT", b"\xc3\xa9t\xc3")), "UTF-8")),
    (b"a SEARCH RETURN (MIN MAX COUNT ALL SAVE) 1:5",
     c.Search("a", False, q(c.SearchSet(False, S((R(1, 5),)))), None,
              ("MIN", "MAX", "COUNT", "ALL", "SAVE"))),
    (b"a SEARCH RETURN () CHARSET us-ascii SEEN",
     c.Search("a", False, q(SEEN), "us-ascii", ())),
    (b"a SEARCH $", c.Search("a", False, q(c.SearchSet(False, S((), saved=True))))),
    (b"a SEARCH NEW OLD RECENT", c.Search("a", False, q(
        q(c.SearchFlag("\\Recent", True), c.SearchFlag("\\Seen", False)),
        c.SearchFlag("\\Recent", False), c.SearchFlag("\\Recent", True)))),
    (b"a SEARCH ANSWERED DELETED DRAFT FLAGGED SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED",
     c.Search("a", False, q(*[c.SearchFlag(f, p) for p in (True, False) for f in (
         "\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen")][:9]))),
    (b"a SEARCH KEYWORD $Forwarded UNKEYWORD foo",
     c.Search("a", False, q(c.SearchFlag("$Forwarded", True), c.SearchFlag("foo", False)))),
    (b'a SEARCH FROM smith TO "a b" CC x BCC y SUBJECT {2}\r\nhi',
     c.Search("a", False, q(*[c.SearchHeader(h, v) for h, v in (
         (b"FROM", b"smith"), (b"TO", b"a b"), (b"CC", b"x"), (b"BCC", b"y"),
         (b"SUBJECT", b"hi"))]))),
    (b"a SEARCH HEADER list-id \"<x>\" BODY foo TEXT bar",
     c.Search("a", False, q(c.SearchHeader(b"LIST-ID", b"<x>"), c.SearchText("BODY", b"foo"),
                            c.SearchText("TEXT", b"bar")))),
    (b'a SEARCH BEFORE 1-Feb-1994 ON "01-feb-1994" SINCE 31-Dec-2020',
     c.Search("a", False, q(c.SearchDate("BEFORE", False, date(1994, 2, 1)),
                            c.SearchDate("ON", False, date(1994, 2, 1)),
                            c.SearchDate("SINCE", False, date(2020, 12, 31))))),
    (b"a SEARCH SENTBEFORE 1-Jan-2000 SENTON 2-Jan-2000 SENTSINCE 3-Jan-2000",
     c.Search("a", False, q(c.SearchDate("BEFORE", True, date(2000, 1, 1)),
                            c.SearchDate("ON", True, date(2000, 1, 2)),
                            c.SearchDate("SINCE", True, date(2000, 1, 3))))),
    (b"a SEARCH LARGER 100 SMALLER 99999999999",
     c.Search("a", False, q(c.SearchSize(True, 100), c.SearchSize(False, 99999999999)))),
    (b"a SEARCH OLDER 3600 YOUNGER 60",
     c.Search("a", False, q(c.SearchWithin(True, 3600), c.SearchWithin(False, 60)))),
    (b"a SEARCH UID 1:100 2,3",
     c.Search("a", False, q(c.SearchSet(True, S((R(1, 100),))), c.SearchSet(False, S((R(2, 2), R(3, 3))))))),
    (b"a SEARCH NOT SEEN OR DELETED (FLAGGED UNSEEN)",
     c.Search("a", False, q(c.SearchNot(SEEN), c.SearchOr(
         c.SearchFlag("\\Deleted", True),
         q(c.SearchFlag("\\Flagged", True), c.SearchFlag("\\Seen", False)))))),
    (b"a SEARCH MODSEQ 620162338", c.Search("a", False, q(c.SearchModseq(620162338)))),
    (b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338',
     c.Search("a", False, q(c.SearchModseq(620162338)))),
    (b"a SEARCH ((SEEN))", c.Search("a", False, q(q(q(SEEN))))),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[c[0][:50].decode("latin-1") for c in CASES])
def test_command(line: bytes, expected: object) -> None:
    assert one(line + b"\r\n") == expected


def test_bare_lf_line_ending_is_accepted() -> None:
    assert one(b"a NOOP\n") == c.Noop("a")
