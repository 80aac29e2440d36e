"""The SEARCH text index of the SQLite backend (store/sqlite/search_ops.py):
RFC 9051 §6.4.4 substring semantics, case-insensitive as Python's casefold,
for decoded non-ASCII text; one index row per message however many mailboxes
hold it; expunge removes it; the schema migration backfills old rows.

Every search test runs twice: through the index (SCAN_BELOW = 0) and through
the mailbox scan (SCAN_BELOW huge); both must give the same answers."""

from __future__ import annotations

import base64
import logging
import quopri
import sqlite3
from pathlib import Path

import pytest

from conftest import make_message
from mailbag.store.api import INBOX, AppendItem, MailboxInfo
from mailbag.store.sqlite import SqliteStore, search_ops
from mailbag.store.sqlite.schema import _MIGRATIONS, SCHEMA_VERSION, _statements, migrate


@pytest.fixture(params=["index", "scan"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(search_ops, "SCAN_BELOW", 0 if request.param == "index" else 10**9)
    return str(request.param)


async def _inbox(s: SqliteStore, name: str = "a") -> MailboxInfo:
    acc = await s.create_account(name, "h")
    box = await s.get_mailbox(acc.id, INBOX)
    assert box is not None
    return box


def _mime(subject_b64: str, body: bytes, charset: str, cte: str, subtype: str = "plain",
          sender: str = "Alice <alice@example.org>") -> bytes:
    return (
        f"From: {sender}\r\nTo: Bob <bob@example.org>\r\n"
        f"Subject: =?utf-8?b?{subject_b64}?=\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/{subtype}; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode() + body


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_substring_short_and_long_needles(sqlite_store: SqliteStore, path: str) -> None:
    box = await _inbox(sqlite_store)
    bodies = ["The quick brown fox", "jumps over the lazy dog", "x", "a\"b*c:d(e)f", ""]
    await sqlite_store.append(box.id, [AppendItem(make_message(body=b)) for b in bodies])
    s = sqlite_store

    async def body(needle: str) -> set[int]:
        return await s.search_text(box.id, "BODY", needle)

    assert await body("x") == {1, 3}                 # 1 char ("fox" holds an x)
    assert await body("OX") == {1}                   # 2 chars, other case
    assert await body("the") == {1, 2}               # exactly one trigram
    assert await body("QUICK BROWN") == {1}
    assert await body("k b") == {1}                  # across a space
    assert await body("brown dog") == set()          # every trigram present? no match
    assert await body("own fox") == {1}
    assert await body("over the lazy dog") == {2}
    # FTS5 query syntax in the needle is plain text.
    assert await body('a"b*c:d(e)f') == {4}
    assert await body('"b*') == {4}
    assert await body("c:d") == {4}
    assert await body("AND") == set()
    assert await body("zzz") == set()


async def test_trigrams_all_present_but_apart_is_no_match(
    sqlite_store: SqliteStore, path: str
) -> None:
    """A message with every trigram of the needle, but not the needle, is no
    match: the index's phrase needs them at consecutive positions."""
    box = await _inbox(sqlite_store)
    await sqlite_store.append(box.id, [
        AppendItem(make_message(body="abcxyz ... defghi")),
        AppendItem(make_message(body="abcdefghi")),
    ])
    assert await sqlite_store.search_text(box.id, "BODY", "abcdefghi") == {2}
    assert await sqlite_store.search_text(box.id, "BODY", "ABCXYZ") == {1}


async def test_non_ascii_decoded_text(sqlite_store: SqliteStore, path: str) -> None:
    box = await _inbox(sqlite_store)
    thai = "สวัสดีครับ การประชุมทีมย้ายไปวันพฤหัสบดี"
    chinese = "本周五下午三点在北京办公室召开季度会议"
    french = "la CRÈME BRÛLÉE était excellente, naïve façade"
    msgs = [
        _mime(_b64("ประชุมทีม"), base64.encodebytes(thai.encode()), "utf-8", "base64"),
        _mime(_b64("会议纪要"), base64.encodebytes(chinese.encode("gb18030")),
              "gb18030", "base64"),
        _mime(_b64("Réunion"), quopri.encodestring(french.encode("iso-8859-15")),
              "iso-8859-15", "quoted-printable",
              sender="=?utf-8?b?" + _b64("Søren Ærø") + "?= <soren@example.dk>"),
        _mime(_b64("Menü"), quopri.encodestring(
            "<p>Wir essen <b>Crème</b> brûlée im Caf&eacute; 北京</p>".encode()),
              "utf-8", "quoted-printable", "html"),
    ]
    await sqlite_store.append(box.id, [AppendItem(m) for m in msgs])
    s, b = sqlite_store, box.id
    assert await s.search_text(b, "BODY", "ประชุม") == {1}
    assert await s.search_text(b, "BODY", "วัน") == {1}
    assert await s.search_text(b, "SUBJECT", "ประชุม") == {1}
    assert await s.search_text(b, "BODY", "北京办公室") == {2}
    assert await s.search_text(b, "BODY", "北京") == {2, 4}        # 2 characters
    assert await s.search_text(b, "BODY", "京") == {2, 4}          # 1 character
    assert await s.search_text(b, "SUBJECT", "纪要") == {2}
    assert await s.search_text(b, "TEXT", "会议纪要") == {2}        # decoded header
    assert await s.search_text(b, "BODY", "crème brûlée") == {3, 4}
    assert await s.search_text(b, "BODY", "CRÈME BRÛLÉE") == {3, 4}
    assert await s.search_text(b, "BODY", "creme") == set()        # accents matter
    assert await s.search_text(b, "BODY", "café") == {4}          # entity decoded
    assert await s.search_text(b, "BODY", "<b>") == set()          # HTML stripped
    assert await s.search_text(b, "FROM", "SØREN ÆRØ") == {3}
    assert await s.search_text(b, "FROM", "ærø <soren@") == {3}
    assert await s.search_text(b, "SUBJECT", "RÉUNION") == {3}
    assert await s.search_text(b, "SUBJECT", "menü") == {4}


CASE_TEXTS = [
    "Die Straße ist lang",
    "DIE STRASSE IST LANG",
    "İSTANBUL und Istanbul",
    "ıstanbul mit punktlosem i",
    "ISTANBUL groß",
    "Σίσυφος ΣΊΣΥΦΟΣ",
    "ǅemal ﬁle",
]
CASE_NEEDLES = ["straße", "STRASSE", "ẞ", "ß", "ss", "İstanbul", "istanbul", "ıSTANBUL",
                "ı", "I", "i̇", "σίσυφοσ", "ΣΊΣΥΦΟΣ", "ǆem", "FILE", "fi", "Groß"]


async def test_casefolding_as_python(sqlite_store: SqliteStore, path: str) -> None:
    """Whatever str.casefold says (ß = SS = ẞ, İ is i + dot, ı is its own
    letter), the store says, for needles below and above three characters."""
    box = await _inbox(sqlite_store)
    await sqlite_store.append(box.id, [AppendItem(make_message(body=t)) for t in CASE_TEXTS])
    for needle in CASE_NEEDLES:
        want = {i + 1 for i, t in enumerate(CASE_TEXTS) if needle.casefold() in t.casefold()}
        got = await sqlite_store.search_text(box.id, "BODY", needle)
        assert got == want, needle
    # Spot checks that the reference itself says what the docstring claims.
    assert await sqlite_store.search_text(box.id, "BODY", "ẞ") == {1, 2, 5}
    assert await sqlite_store.search_text(box.id, "BODY", "ıstanbul") == {4}


async def test_header_fields_and_text(sqlite_store: SqliteStore, path: str) -> None:
    box = await _inbox(sqlite_store)
    await sqlite_store.append(box.id, [
        AppendItem(make_message(subject="Quarterly report", body="numbers inside",
                                Cc="Carol <carol@example.net>")),
        AppendItem(make_message(subject="lunch", body="the quarterly report is late")),
    ])
    s, b = sqlite_store, box.id
    assert await s.search_text(b, "SUBJECT", "QUARTERLY") == {1}
    assert await s.search_text(b, "BODY", "quarterly") == {2}
    assert await s.search_text(b, "TEXT", "quarterly") == {1, 2}
    assert await s.search_text(b, "CC", "carol@example") == {1}
    assert await s.search_text(b, "TO", "carol") == set()
    assert await s.search_text(b, "FROM", "alice <alice@example.org>") == {1, 2}
    assert await s.search_text(b, "BCC", "alice") == set()
    assert await s.search_text(b, "TEXT", "subject: lunch") == {2}


def _indexed(s: SqliteStore, needle: str) -> list[int]:
    """Message ids the FTS index itself returns (no mailbox, no check)."""
    with sqlite3.connect(s.db_path) as conn:
        q = search_ops.match_query("TEXT", needle.casefold())
        return [r[0] for r in conn.execute(
            "SELECT rowid FROM message_fts WHERE message_fts MATCH ?", (q,))]


async def test_dedup_across_mailboxes_and_expunge(sqlite_store: SqliteStore, path: str) -> None:
    s = sqlite_store
    inbox = await _inbox(s)
    other = await s.create_mailbox(inbox.account_id, "Other")
    raw = make_message(subject="shared one", body="unique-needle-42")
    await s.append(inbox.id, [AppendItem(make_message(body="filler")), AppendItem(raw)])
    await s.append(other.id, [AppendItem(raw)])                      # same blob: one row
    await s.copy(inbox.id, [2], other.id)
    assert len(_indexed(s, "unique-needle-42")) == 1
    assert await s.search_text(inbox.id, "BODY", "UNIQUE-NEEDLE") == {2}
    assert await s.search_text(other.id, "BODY", "unique-needle") == {1, 2}

    # Expunged from INBOX: gone there, still found in Other, still indexed.
    await s.store_flags(inbox.id, [2], "add", frozenset({"\\Deleted"}))
    assert await s.expunge(inbox.id) == [2]
    assert await s.search_text(inbox.id, "BODY", "unique-needle") == set()
    assert await s.search_text(other.id, "BODY", "unique-needle") == {1, 2}
    assert len(_indexed(s, "unique-needle-42")) == 1

    # The last holder expunges it: the index row goes with the message row.
    await s.store_flags(other.id, [1, 2], "add", frozenset({"\\Deleted"}))
    await s.expunge(other.id)
    assert await s.search_text(other.id, "BODY", "unique-needle") == set()
    assert _indexed(s, "unique-needle-42") == []
    assert _indexed(s, "filler") != []

    # Appended again after removal: indexed again (FTS kept consistent).
    res = await s.append(other.id, [AppendItem(raw)])
    assert await s.search_text(other.id, "BODY", "unique-needle") == set(res.uids)
    with sqlite3.connect(s.db_path) as conn:
        conn.execute("INSERT INTO message_fts (message_fts) VALUES ('integrity-check')")


async def test_delete_mailbox_removes_index_rows(sqlite_store: SqliteStore) -> None:
    s = sqlite_store
    inbox = await _inbox(s)
    other = await s.create_mailbox(inbox.account_id, "Gone")
    await s.append(other.id, [AppendItem(make_message(body="only-in-gone"))])
    assert len(_indexed(s, "only-in-gone")) == 1
    await s.delete_mailbox(inbox.account_id, "Gone")
    assert _indexed(s, "only-in-gone") == []


def test_migration_backfills_existing_rows(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A database made before the index (schema 3) gets every message_text
    row indexed by the migration that creates the index; each step of an
    upgrade is logged (the index rebuilds make a first start slow)."""
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    before = _MIGRATIONS.index(next(m for m in _MIGRATIONS if "message_fts" in m))
    for script in _MIGRATIONS[:before]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {before}")
    for i, body in enumerate(["old text one", "older text two", "ประชุมเก่า"], 1):
        conn.execute("INSERT INTO messages (id, blob_id, size, facts, envelope, body,"
                     " bodystructure) VALUES (?, ?, 1, x'', x'', x'', x'')", (i, f"b{i}"))
        conn.execute("INSERT INTO message_text (message_id, headers, body) VALUES (?, '', ?)",
                     (i, body))
    with caplog.at_level(logging.INFO, logger="mailbag.store"):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    steps = [r.getMessage() for r in caplog.records if "schema-migrated" in r.getMessage()]
    assert len(steps) == SCHEMA_VERSION - before
    assert steps[-1].startswith(f"schema-migrated from={SCHEMA_VERSION - 1} to={SCHEMA_VERSION} ms=")

    def hits(needle: str) -> list[int]:
        q = search_ops.match_query("BODY", needle)
        return sorted(r[0] for r in conn.execute(
            "SELECT rowid FROM message_fts WHERE message_fts MATCH ?", (q,)))

    assert hits("text") == [1, 2]
    assert hits("older") == [2]
    assert hits("ประชุม") == [3]
    conn.close()
