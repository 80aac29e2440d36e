"""THREAD algorithms (mailbag.imap.thread, RFC 5256 REFERENCES and
ORDEREDSUBJECT) on hand-made facts, and SORT/ESORT/THREAD/PARTIAL,
CANCELUPDATE, MULTIAPPEND and CATENATE end to end against the real server
(Python's imaplib as the client)."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mailbag.imap.commands.sort import ordered_set, partial_item
from mailbag.imap.thread import (
    ThreadMessage,
    is_reply_or_forward,
    ordered_subject,
    references,
    render,
)
from mailbag.wire.commands import PartialRange


def msg(uid: int, mid: str | None = None, refs: str = "", subject: str = "",
        date: float = 0.0) -> ThreadMessage:
    base = re.sub(r"^(re|fwd?): *", "", subject, flags=re.I).upper()
    return ThreadMessage(uid, date, base, is_reply_or_forward(subject), mid,
                         tuple(refs.split()))


def refs_threads(*messages: ThreadMessage) -> bytes:
    return render(references(messages), lambda uid: uid)


# -------------------------------------------------------- REFERENCES (RFC 5256)

def test_chain_and_siblings() -> None:
    assert refs_threads(msg(1, "<a>"), msg(2, "<b>", "<a>"), msg(3, "<c>", "<a> <b>"),
                        msg(4, "<d>", "<a>")) == b"(1 (2 3)(4))"


def test_own_references_replace_an_earlier_link_and_loops_are_refused() -> None:
    # imaptest "thread": <b> says a -> c -> b, then <c> says its parent is <b>.
    # c drops the a link; b is c's child, so linking c under b would loop.
    assert refs_threads(msg(1, "<a>", date=3), msg(2, "<b>", "<a> <c>", date=1),
                        msg(3, "<c>", "<b>", date=2)) == b"(3 2)(1)"


def test_duplicate_and_missing_message_ids_are_separate_messages() -> None:
    assert refs_threads(msg(1, "<a>"), msg(2, "<a>")) == b"(1)(2)"
    assert refs_threads(msg(1), msg(2)) == b"(1)(2)"


def test_root_dummy_with_several_children_is_kept() -> None:
    assert refs_threads(msg(1, None, "<x>"), msg(2, None, "<x>")) == b"((1)(2))"


def test_dummy_with_one_child_is_promoted_and_subjects_gather() -> None:
    # imaptest "thread4": <b> hangs under the missing <c>; the dummy goes and
    # the reply "Re: foo" joins the thread of "foo".
    assert refs_threads(msg(1, "<a>", subject="foo"),
                        msg(2, "<b>", "<c>", subject="Re: foo", date=1)) == b"(1 2)"


def test_same_subject_non_replies_get_a_dummy_parent() -> None:
    assert refs_threads(msg(1, "<a>", subject="x"), msg(2, "<b>", subject="x", date=1),
                        msg(3, "<c>", subject="y")) == b"((1)(2))(3)"


def test_threads_and_siblings_sort_by_date_then_sequence() -> None:
    assert refs_threads(msg(1, "<a>", date=5), msg(2, "<b>", "<a>", date=9),
                        msg(3, "<c>", "<a>", date=7), msg(4, "<d>", date=1)) == b"(4)(1 (3)(2))"


def test_reference_loops_in_headers_are_harmless() -> None:
    # a says its parent is b, b says its parent is a: the first link stays
    assert refs_threads(msg(1, "<a>", "<b>"), msg(2, "<b>", "<a>")) == b"(2 1)"
    # a message naming itself as its parent gets none
    assert refs_threads(msg(1, "<a>", "<a>"), msg(2, "<b>", "<a> <b>")) == b"(1)(2)"


def test_in_reply_to_is_used_without_references() -> None:
    from mailbag.imap.thread import message_facts
    from mailbag.mime.parse import parse_message

    raw = b"Message-ID: <b@x>\r\nIn-Reply-To: <a@x> (sent by me)\r\nSubject: Re: hi\r\n\r\nbody\r\n"
    m = message_facts(7, parse_message(raw), 1.0)
    assert (m.message_id, m.references, m.subject, m.reply) == ("<b@x>", ("<a@x>",), "HI", True)


@pytest.mark.parametrize(("subject", "reply"), [
    ("Re: x", True), ("RE:x", True), ("fwd: x", True), ("Fw: x", True), ("[list] Re: x", True),
    ("x (fwd)", True), ("[Fwd: x]", True), ("x", False), ("[list] x", False),
    ("Ad: Re: x", False), ("Regarding x", False),
])
def test_reply_or_forward(subject: str, reply: bool) -> None:
    assert is_reply_or_forward(subject) is reply


# ------------------------------------------------------------- ORDEREDSUBJECT

def test_ordered_subject_groups_then_orders_by_first_date() -> None:
    messages = [msg(1, subject="a", date=10), msg(2, subject="b", date=9),
                msg(3, subject="a", date=8), msg(4, subject="b", date=7),
                msg(5, subject="Re: a", date=30), msg(6, subject="c", date=1)]
    assert render(ordered_subject(messages), lambda u: u) == b"(6)(4 2)(3 (1)(5))"


def test_render_maps_numbers() -> None:
    assert render(ordered_subject([msg(10, subject="a"), msg(20, subject="a")]),
                  lambda u: u // 10) == b"(1 2)"
    assert render([], lambda u: u) == b""


# --------------------------------------------------------- ESORT helpers

def test_ordered_set_keeps_order() -> None:
    assert ordered_set([5, 3, 4, 2, 1]) == b"5,3:4,2,1"
    assert ordered_set([1, 2, 3, 7]) == b"1:3,7"
    assert ordered_set([]) == b""


def test_partial_item() -> None:
    assert partial_item([5, 3, 4, 2, 1], PartialRange(2, 4)) == b"PARTIAL (2:4 3:4,2)"
    assert partial_item([1, 2], PartialRange(3, 9)) == b"PARTIAL (3:9 NIL)"


# ------------------------------------------------------------------ end to end

MESSAGES = [
    b"From: Carol <carol@example.org>\r\nTo: zed@example.org\r\nSubject: b\r\n"
    b"Message-ID: <1@x>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\none\r\n",
    b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: Re: b\r\n"
    b"Message-ID: <2@x>\r\nReferences: <1@x>\r\nDate: Mon, 1 Jan 2024 09:00:00 +0000\r\n\r\n"
    b"two two two two\r\n",
    b"From: Bob <bob@example.org>\r\nTo: amy@example.org\r\nSubject: a\r\n"
    b"Message-ID: <3@x>\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000\r\n\r\nthree three\r\n",
]


@pytest.fixture
def imap(server: Any) -> Iterator[imaplib.IMAP4]:
    conn = imaplib.IMAP4("127.0.0.1", server.imap_port)
    conn.login("alice", "alice-pw")
    try:
        yield conn
    finally:
        try:
            conn.logout()
        except Exception:  # noqa: BLE001 - the server may have gone already
            pass


def raw(conn: imaplib.IMAP4, line: bytes) -> tuple[bytes, list[bytes]]:
    """Send a raw command (literals must be LITERAL+); return the tagged
    line without its tag and all untagged lines."""
    tag = conn._new_tag()  # type: ignore[attr-defined]
    conn.send(tag + b" " + line + b"\r\n")
    untagged: list[bytes] = []
    while True:
        got = conn._get_line()  # type: ignore[attr-defined]
        if got.startswith(tag + b" "):
            return got[len(tag) + 1:], untagged
        untagged.append(got)


def cmd(conn: imaplib.IMAP4, line: str) -> tuple[str, list[bytes]]:
    """Send a command; return the tagged status and all untagged lines."""
    tagged, untagged = raw(conn, line.encode())
    return tagged.split(b" ")[0].decode(), untagged


@pytest.fixture
def box(imap: imaplib.IMAP4, request: pytest.FixtureRequest) -> str:
    name = "T" + re.sub(r"\W", "", request.node.name)
    imap.create(name)
    # MULTIAPPEND: all three in one command, atomically
    literals = b"".join(b" {%d+}\r\n" % len(m) + m for m in MESSAGES)
    tagged, _ = raw(imap, b"APPEND " + name.encode() + literals)
    assert re.match(rb"OK \[APPENDUID \d+ 1:3\]", tagged), tagged
    imap.select(name)
    return name


def capabilities(conn: imaplib.IMAP4) -> set[str]:
    typ, data = conn.capability()
    assert typ == "OK"
    return set(data[0].decode().upper().split())  # type: ignore[union-attr]


def test_capabilities_advertised(imap: imaplib.IMAP4) -> None:
    caps = capabilities(imap)
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT",
                "MULTIAPPEND", "CATENATE"):
        assert cap in caps


def test_sort(imap: imaplib.IMAP4, box: str) -> None:
    assert cmd(imap, "SORT (DATE) UTF-8 ALL") == ("OK", [b"* SORT 2 1 3"])
    assert cmd(imap, "SORT (REVERSE SIZE) UTF-8 ALL")[1] == [b"* SORT 2 3 1"]
    assert cmd(imap, "SORT (SUBJECT ARRIVAL) UTF-8 ALL")[1] == [b"* SORT 3 1 2"]
    assert cmd(imap, "SORT (DISPLAYFROM) UTF-8 ALL")[1] == [b"* SORT 2 3 1"]
    assert cmd(imap, "SORT (FROM) UTF-8 NOT FROM bob")[1] == [b"* SORT 2 1"]
    assert cmd(imap, "UID SORT (TO) UTF-8 ALL")[1] == [b"* SORT 3 2 1"]
    assert cmd(imap, "SORT (DATE) KOI8-R ALL")[0] == "NO"
    assert cmd(imap, "SORT (BOGUS) UTF-8 ALL")[0] == "BAD"


def test_esort_and_partial(imap: imaplib.IMAP4, box: str) -> None:
    status, lines = cmd(imap, "SORT RETURN (MIN MAX COUNT ALL) (REVERSE DATE) UTF-8 ALL")
    assert status == "OK"
    assert re.fullmatch(rb'\* ESEARCH \(TAG "\S+"\) MIN 3 MAX 2 ALL 3,1:2 COUNT 3', lines[0])
    lines = cmd(imap, "UID SORT RETURN (PARTIAL 2:9) (DATE) UTF-8 ALL")[1]
    assert re.fullmatch(rb'\* ESEARCH \(TAG "\S+"\) UID PARTIAL \(2:9 1,3\)', lines[0])
    lines = cmd(imap, "SEARCH RETURN (PARTIAL 3:2) ALL")[1]
    assert re.fullmatch(rb'\* ESEARCH \(TAG "\S+"\) PARTIAL \(2:3 2:3\)', lines[0])
    lines = cmd(imap, "SORT RETURN (SAVE) (DATE) UTF-8 FROM bob")[1]
    assert lines == []
    assert cmd(imap, "SEARCH $")[1] == [b"* SEARCH 3"]


def test_thread(imap: imaplib.IMAP4, box: str) -> None:
    assert cmd(imap, "THREAD REFERENCES UTF-8 ALL") == ("OK", [b"* THREAD (1 2)(3)"])
    assert cmd(imap, "UID THREAD ORDEREDSUBJECT UTF-8 ALL")[1] == [b"* THREAD (2 1)(3)"]
    assert cmd(imap, "THREAD REFERENCES UTF-8 FROM nobody")[1] == [b"* THREAD"]
    assert cmd(imap, "THREAD REFS UTF-8 ALL")[0] == "BAD"


def test_cancelupdate_of_unknown_tag_is_bad(imap: imaplib.IMAP4, box: str) -> None:
    assert cmd(imap, 'CANCELUPDATE "nosuch"')[0] == "BAD"


def test_context_updates(imap: imaplib.IMAP4, box: str) -> None:
    if "CONTEXT=SEARCH" not in capabilities(imap):
        pytest.skip("CONTEXT=SEARCH not advertised (session hook not wired yet)")
    status, lines = cmd(imap, "SEARCH RETURN (UPDATE ALL) SEEN")
    assert status == "OK" and lines[0].endswith(b")")
    search_tag = re.search(rb'TAG "(\S+)"', lines[0])[1]  # type: ignore[index]
    lines = cmd(imap, "STORE 1,3 +FLAGS.SILENT (\\Seen)")[1]
    assert lines == [b'* ESEARCH (TAG "' + search_tag + b'") ADDTO (0 1,3)']
    lines = cmd(imap, "STORE 1 -FLAGS.SILENT (\\Seen)")[1]
    assert lines == [b'* ESEARCH (TAG "' + search_tag + b'") REMOVEFROM (0 1)']
    assert cmd(imap, f'CANCELUPDATE "{search_tag.decode()}"')[0] == "OK"
    assert cmd(imap, "STORE 2 +FLAGS.SILENT (\\Seen)")[1] == []


def test_sort_context_updates(imap: imaplib.IMAP4, box: str) -> None:
    if "CONTEXT=SORT" not in capabilities(imap):
        pytest.skip("CONTEXT=SORT not advertised (session hook not wired yet)")
    status, lines = cmd(imap, "SORT RETURN (UPDATE) (REVERSE DATE) UTF-8 SEEN")
    assert status == "OK" and len(lines) == 1
    tag = re.search(rb'TAG "(\S+)"', lines[0])[1]  # type: ignore[index]
    lines = cmd(imap, "STORE 1,3 +FLAGS.SILENT (\\Seen)")[1]
    # positions in the new sorted result: 3 (11:00) first, then 1 (10:00)
    assert lines == [b'* ESEARCH (TAG "' + tag + b'") ADDTO (1 3 2 1)']
    lines = cmd(imap, "STORE 3 -FLAGS.SILENT (\\Seen)")[1]
    assert lines == [b'* ESEARCH (TAG "' + tag + b'") REMOVEFROM (1 3)']
    assert cmd(imap, "STORE 1 +FLAGS (\\Deleted)")[0] == "OK"
    status, lines = cmd(imap, "EXPUNGE")
    assert lines == [b'* ESEARCH (TAG "' + tag + b'") REMOVEFROM (1 1)', b"* 1 EXPUNGE"]
    assert cmd(imap, "CLOSE")[0] == "OK"
    imap.select(box)
    assert cmd(imap, f'CANCELUPDATE "{tag.decode()}"')[0] == "BAD"   # closing ended it


def test_catenate(imap: imaplib.IMAP4, box: str) -> None:
    lines = cmd(imap, f"STATUS {box} (UIDVALIDITY)")[1]
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", lines[0])[1])  # type: ignore[index]
    text = b"X-Note: made\r\n"
    b = box.encode()
    tagged, _ = raw(imap, b"APPEND " + b + b" (\\Seen) CATENATE (TEXT {%d+}\r\n" % len(text)
                    + text + b' URL "/' + b + b';UIDVALIDITY=%d/;UID=3/;SECTION=HEADER"' % uidvalidity
                    + b' URL "/' + b + b'/;UID=2/;SECTION=TEXT/;PARTIAL=4.4")')
    assert tagged.startswith(b"OK [APPENDUID"), tagged
    typ, data = imap.fetch("4", "(FLAGS BODY.PEEK[])")
    assert typ == "OK"
    body = data[0][1]  # type: ignore[index]
    header3 = MESSAGES[2].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert body == text + header3 + b"two "
    assert b"\\Seen" in data[0][0]  # type: ignore[index]
    # a URL that names nothing: NO [BADURL], nothing appended
    status, _ = cmd(imap, f'APPEND {box} CATENATE (URL "/{box}/;UID=99")')
    assert status == "NO"
    status, _ = cmd(imap, f'APPEND {box} CATENATE (URL "/{box};UIDVALIDITY=1/;UID=1")')
    assert status == "NO"
    status, _ = cmd(imap, f'APPEND {box} CATENATE (URL "imap://bob@localhost/INBOX/;UID=1")')
    assert status == "NO"
    status, _ = cmd(imap, f'APPEND {box}nonexistent CATENATE (URL "/{box}/;UID=1")')
    assert status == "NO"
    assert cmd(imap, "SEARCH ALL")[1] == [b"* SEARCH 1 2 3 4"]
