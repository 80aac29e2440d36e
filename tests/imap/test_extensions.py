"""The smaller extensions clients ask for, end to end against the real
server over a raw socket: APPENDLIMIT (RFC 7889), PREVIEW (RFC 8970),
SAVEDATE (RFC 8514), OBJECTID (RFC 8474), CREATE-SPECIAL-USE (RFC 6154 §3)
and STATUS=SIZE (RFC 8438)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest
from raw_imap_client import RawClient

if TYPE_CHECKING:
    from testserver import TestServer

_users = itertools.count(1)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class Client(RawClient):
    """One command at a time; untagged lines kept, literals inlined."""

    def run(self, command: str | bytes) -> tuple[list[bytes], bytes]:
        tag, raw = self.send(command, b"x")
        untagged: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def ok(self, command: str | bytes) -> list[bytes]:
        untagged, tagged = self.run(command)
        assert tagged.startswith(b"OK"), (command, tagged, untagged)
        return untagged

    def append(self, mailbox: str, message: bytes, extra: str = "") -> int:
        tagged = self.run(f"APPEND {mailbox} {extra}{{{len(message)}+}}\r\n".encode()
                          + message)[1]
        m = re.search(rb"APPENDUID \d+ (\d+)", tagged)
        assert m, tagged
        return int(m[1])

    def close(self) -> None:
        try:
            self.run("LOGOUT")
        finally:
            self.sock.close()


@pytest.fixture
def c(server: TestServer) -> Iterator[Client]:
    """A fresh account, logged in."""
    name = f"ext{next(_users)}"
    server.add_user(name, "pw")
    client = Client(server.imap_port)
    client.ok(f"LOGIN {name} pw")
    try:
        yield client
    finally:
        client.close()


def plain(text: str, subject: str = "hi") -> bytes:
    return (f"From: a@example.org\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + text).encode()


def imap_date(d: date) -> str:
    return f"{d.day}-{MONTHS[d.month - 1]}-{d.year}"


def search(c: Client, criteria: str) -> list[int]:
    lines = [x for x in c.ok(f"UID SEARCH {criteria}") if x.startswith(b"* SEARCH")]
    assert len(lines) == 1, lines
    return [int(n) for n in lines[0].split()[2:]]


def fetch_item(c: Client, uid: int, item: str) -> bytes:
    """The value of one FETCH data item (the rest of the line after it)."""
    lines = c.ok(f"UID FETCH {uid} ({item})")
    assert len(lines) == 1, lines
    name = item.split()[0].encode()
    m = re.search(rb"\b" + re.escape(name) + rb" (.*)", lines[0], re.S)
    assert m, lines
    value = m[1]
    return value[:-1] if value.endswith(b")") else value


# ------------------------------------------------------------- capabilities

def test_capabilities_listed(c: Client) -> None:
    caps = c.ok("CAPABILITY")[0].split()[2:]
    for cap in (b"PREVIEW", b"SAVEDATE", b"OBJECTID", b"CREATE-SPECIAL-USE", b"STATUS=SIZE",
                b"LIST-STATUS", b"QUOTA"):
        assert cap in caps, cap
    limits = [x for x in caps if x.startswith(b"APPENDLIMIT=")]
    assert limits == [b"APPENDLIMIT=67108864"]   # limits.max_literal, the default


def test_capabilities_before_login_do_not_list_appendlimit(server: TestServer) -> None:
    client = Client(server.imap_port)
    try:
        caps = client.ok("CAPABILITY")[0]
        assert b"APPENDLIMIT" not in caps and b"QUOTA" not in caps
    finally:
        client.close()


# --------------------------------------------------------------- APPENDLIMIT

def test_appendlimit_status_and_list_status(c: Client) -> None:
    assert c.ok("STATUS INBOX (APPENDLIMIT)") == [b"* STATUS INBOX (APPENDLIMIT 67108864)"]
    lines = c.ok('LIST "" "Dr*" RETURN (STATUS (APPENDLIMIT MESSAGES))')
    assert lines[-1] == b"* STATUS Drafts (APPENDLIMIT 67108864 MESSAGES 0)"


def test_append_above_appendlimit_is_toobig(c: Client) -> None:
    # A synchronizing literal: the server refuses before the client sends it.
    _, tagged = c.run("APPEND INBOX {67108865}")
    assert tagged.startswith(b"NO [TOOBIG]"), tagged
    assert c.ok("STATUS INBOX (MESSAGES)") == [b"* STATUS INBOX (MESSAGES 0)"]


# ------------------------------------------------------------------- PREVIEW

def test_preview_plain_text_whitespace_collapsed(c: Client) -> None:
    uid = c.append("INBOX", plain("Hello\r\n\r\n   world,\tthis  is\r\n a test.\r\n"))
    c.ok("SELECT INBOX")
    assert fetch_item(c, uid, "PREVIEW") == b'"Hello world, this is a test."'
    # LAZY: the preview is computed at ingest, so it is always available now.
    assert fetch_item(c, uid, "PREVIEW (LAZY)") == b'"Hello world, this is a test."'


def test_preview_html_stripped_and_limited(c: Client) -> None:
    html = ("<html><head><style>p {color: red}</style></head><body><p>Dear <b>reader</b>,"
            "</p>" + "<p>word</p> " * 200 + "</body></html>")
    msg = (b"From: a@example.org\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
           + html.encode() + b"\r\n--b--\r\n")
    uid = c.append("INBOX", msg)
    c.ok("SELECT INBOX")
    value = fetch_item(c, uid, "PREVIEW")
    assert value.startswith(b'"Dear reader, word word'), value
    text = value[1:-1].decode()
    assert "<" not in text and "color" not in text
    assert len(text) <= 256          # RFC 8970 §3.1: at most 256 characters


def test_preview_utf8_and_no_text(c: Client) -> None:
    uid = c.append("INBOX", plain("Grüße aus Köln — สวัสดี\r\n"))
    img = (b"From: a@example.org\r\nSubject: pic\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n")
    uid2 = c.append("INBOX", img)
    c.ok("SELECT INBOX")
    # 8-bit text travels as a literal, UTF-8 encoded.
    value = fetch_item(c, uid, "PREVIEW")
    assert value == b"{%d}\r\n" % len("Grüße aus Köln — สวัสดี".encode()) + \
        "Grüße aus Köln — สวัสดี".encode()
    # No text part: an empty preview, not NIL (NIL is only for LAZY "not yet").
    assert fetch_item(c, uid2, "PREVIEW") == b'""'


def test_preview_bad_modifier_is_bad(c: Client) -> None:
    c.append("INBOX", plain("x"))
    c.ok("SELECT INBOX")
    assert c.run("FETCH 1 (PREVIEW (FUZZY))")[1].startswith(b"BAD")


# ------------------------------------------------------------------ SAVEDATE

def test_savedate_fetch_and_search(c: Client) -> None:
    # An old INTERNALDATE, so that the date keys must tell the two dates apart.
    uid = c.append("INBOX", plain("old"), '"01-Jan-2000 10:00:00 +0000" ')
    c.ok("SELECT INBOX")
    saved = fetch_item(c, uid, "SAVEDATE")
    m = re.match(rb'"(\d\d)-(\w{3})-(\d{4}) ', saved)
    assert m, saved
    day = date(int(m[3]), MONTHS.index(m[2].decode()) + 1, int(m[1]))
    assert abs((day - date.today()).days) <= 1

    assert search(c, f"SAVEDON {imap_date(day)}") == [uid]
    assert search(c, f"SAVEDSINCE {imap_date(day)}") == [uid]
    assert search(c, f"SAVEDBEFORE {imap_date(day)}") == []
    assert search(c, f"SAVEDBEFORE {imap_date(day + timedelta(days=1))}") == [uid]
    assert search(c, f"SAVEDSINCE {imap_date(day + timedelta(days=1))}") == []
    # The INTERNALDATE keys still look at the internal date.
    assert search(c, "BEFORE 1-Jan-2001") == [uid]
    assert search(c, "SAVEDBEFORE 1-Jan-2001") == []
    assert search(c, "SAVEDATESUPPORTED") == [uid]
    assert search(c, f"NOT SAVEDON {imap_date(day)}") == []
    assert c.run("SEARCH SAVEDON yesterday")[1].startswith(b"BAD")


# ------------------------------------------------------------------ OBJECTID

def mailbox_id_of(lines: list[bytes]) -> bytes:
    ids = [m[1] for x in lines if (m := re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", x))]
    assert len(ids) == 1, lines
    return ids[0]


def test_mailboxid_stable_across_rename_new_after_recreate(c: Client) -> None:
    c.ok("CREATE Projects")
    first = mailbox_id_of(c.ok("SELECT Projects"))
    assert mailbox_id_of(c.ok("STATUS Projects (MAILBOXID)")) == first
    assert mailbox_id_of(c.ok('LIST "" Projects RETURN (STATUS (MAILBOXID))')) == first
    c.ok("UNSELECT")
    c.ok("RENAME Projects Work")
    assert mailbox_id_of(c.ok("STATUS Work (MAILBOXID)")) == first
    inbox = mailbox_id_of(c.ok("STATUS INBOX (MAILBOXID)"))
    assert inbox != first
    c.ok("DELETE Work")
    c.ok("CREATE Work")
    assert mailbox_id_of(c.ok("STATUS Work (MAILBOXID)")) not in (first, inbox)
    # A deleted parent kept for its children, then re-created, is new too.
    c.ok("CREATE Top/Child")
    top = mailbox_id_of(c.ok("STATUS Top (MAILBOXID)"))
    c.ok("DELETE Top")
    c.ok("CREATE Top")
    assert mailbox_id_of(c.ok("STATUS Top (MAILBOXID)")) != top


def test_emailid_threadid_fetch_and_search(c: Client) -> None:
    uid = c.append("INBOX", plain("one", "first"))
    uid2 = c.append("INBOX", plain("two", "second"))
    c.ok("SELECT INBOX")
    eid = fetch_item(c, uid, "EMAILID")
    assert re.fullmatch(rb"\([A-Za-z0-9_-]{1,255}\)", eid), eid
    eid2 = fetch_item(c, uid2, "EMAILID")
    assert eid != eid2
    # mailbag builds no thread ids: THREADID is NIL, and no message has one.
    assert fetch_item(c, uid, "THREADID") == b"NIL"
    assert search(c, f"EMAILID {eid[1:-1].decode()}") == [uid]
    assert search(c, f"EMAILID {eid2[1:-1].decode()}") == [uid2]
    assert search(c, "EMAILID Mnothere") == []
    assert search(c, "THREADID T1") == []
    assert search(c, f"NOT EMAILID {eid[1:-1].decode()}") == [uid2]
    # A copy is the same email (RFC 8474 §5.1).
    c.ok(f"UID COPY {uid} Archive")
    c.ok("SELECT Archive")
    assert fetch_item(c, 1, "EMAILID") == eid
    assert c.run("SEARCH EMAILID bad!id")[1].startswith(b"BAD")
    assert c.run("SEARCH EMAILID")[1].startswith(b"BAD")


# --------------------------------------------------------- CREATE-SPECIAL-USE

def test_create_special_use(c: Client) -> None:
    c.ok("CREATE Drafts2 (USE (\\Drafts))")
    lines = c.ok('LIST "" Drafts2 RETURN (SPECIAL-USE)')
    assert lines == [b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts2']
    for attr in ("\\Bogus", "\\All", "\\Flagged", "\\Sent \\Trash"):
        _, tagged = c.run(f"CREATE Nope (USE ({attr}))")
        assert tagged.startswith(b"NO [USEATTR]"), (attr, tagged)
    # Nothing was created by a refused CREATE.
    assert c.ok('LIST "" Nope') == []
    assert c.run("CREATE Nope (USE \\Drafts)")[1].startswith(b"BAD")


# ---------------------------------------------------------------- STATUS=SIZE

def test_status_size(c: Client) -> None:
    msgs = [plain("a" * n) for n in (10, 300, 4000)]
    for m in msgs:
        c.append("Sent", m)
    total = sum(len(m) for m in msgs)
    assert c.ok("STATUS Sent (SIZE MESSAGES)") == [f"* STATUS Sent (SIZE {total} MESSAGES 3)".encode()]
    c.ok("SELECT Sent")
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert c.ok("STATUS Sent (SIZE)") == [f"* STATUS Sent (SIZE {total - len(msgs[1])})".encode()]
