"""SEARCH through the positional text index without reading message text
(store/sqlite/search_ops.py): a needle of 3..PHRASE_MAX characters is one
FTS5 phrase over trigrams, which must be exactly RFC 9051 §6.4.4's
case-insensitive substring match (Python's casefold) in the searched
columns. Each case compares the index's answer with the plain scan's and
with Python's own ``in`` on the casefolded text, so a shortcut that answered
differently from a substring check fails here: needles spanning the header /
body boundary, trigrams present but apart, repeated trigrams, long needles,
the characters the trigram tokenizer conflates, NUL, deferred (pending) rows,
and the migration from the position-less index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import make_message
from mailbag.store.api import INBOX, AppendItem, MailboxInfo, TextWhere
from mailbag.store.sqlite import SqliteStore, search_ops
from mailbag.store.sqlite.schema import _MIGRATIONS, SCHEMA_VERSION, _statements, migrate


async def _inbox(s: SqliteStore) -> MailboxInfo:
    acc = await s.create_account("a", "h")
    box = await s.get_mailbox(acc.id, INBOX)
    assert box is not None
    return box


async def _both(s: SqliteStore, box: int, where: TextWhere, needle: str,
                monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The index's answer, after checking that the scan gives the same."""
    monkeypatch.setattr(search_ops, "SCAN_BELOW", 10**9)
    scanned = await s.search_text(box, where, needle)
    monkeypatch.setattr(search_ops, "SCAN_BELOW", 0)
    indexed = await s.search_text(box, where, needle)
    assert indexed == scanned, (where, needle)
    return indexed


def _raw_index(s: SqliteStore, where: TextWhere, needle: str) -> set[int]:
    """Message ids the index alone returns for the needle's MATCH query."""
    with sqlite3.connect(s.db_path) as conn:
        return {r[0] for r in conn.execute(
            "SELECT rowid FROM message_fts WHERE message_fts MATCH ?",
            (search_ops.match_query(where, needle.casefold()),))}


BODIES = [
    "The quick brown fox jumps over the lazy dog",
    "abcxyz and then defghi",                 # every trigram of abcdefghi, apart
    "abcdefghi",
    "aaa aaa",                                # "aaaa" has only trigram aaa
    "aaaa",
    "abaab",                                  # "abab": aba here, bab not
    "Straße und STRASSE",
    "x\ufffex",                               # U+FFFE: the tokenizer reads U+FFFD
    "x\ufffdx",
    "x\uffffx",
    'say "hi" (or *not*) {x} : y',
    "Ünïcödé ÜNÏCÖDÉ ünïcödé",
    "北京办公室 会议",
]


@pytest.mark.parametrize("needle", [
    "the", "THE QUICK", "k b", "brown dog", "own fox", "abcdefghi", "ABCXYZ", "cxyz and",
    "aaaa", "aaa aaa", "a a", "abab", "abaa", "straße", "STRASSE", "strasse und",
    "x\ufffdx", "x\ufffex", "x\uffffx", "\ufffex", '"hi"', '(or *not*)', "{x} :", ": y",
    "ünïcödé", "ÜNÏCÖDÉ ü", "北京办", "公室 会", "zzz",
])
async def test_phrase_is_the_substring_match(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch, needle: str
) -> None:
    s = sqlite_store
    box = await _inbox(s)
    res = await s.append(box.id, [AppendItem(make_message(subject=f"s{i}", body=b))
                                  for i, b in enumerate(BODIES)])
    want = {uid for uid, b in zip(res.uids, BODIES, strict=True)
            if needle.casefold() in b.casefold()}
    assert await _both(s, box.id, "BODY", needle, monkeypatch) == want
    if search_ops.exact_match(needle.casefold()):
        # The index alone says it: nothing is left for a check to remove.
        # (Message id i+1 is the i-th body: one message row each.)
        assert {m for m in _raw_index(s, "BODY", needle)} == {
            i + 1 for i, b in enumerate(BODIES) if needle.casefold() in b.casefold()}


def test_exact_match_only_where_the_tokenizer_agrees() -> None:
    assert search_ops.exact_match("abc")
    assert search_ops.exact_match("x" * search_ops.PHRASE_MAX)
    assert not search_ops.exact_match("ab")                              # no trigram
    assert not search_ops.exact_match("x" * (search_ops.PHRASE_MAX + 1))  # two ends, checked
    for odd in ("\ufffd", "\ufffe", "\uffff", "\x00"):
        assert not search_ops.exact_match(f"ab{odd}cd")
    assert search_ops.match_query("TEXT", 'a"b') == '{headers body} : "a""b"'
    long = "".join(chr(0x4E00 + i) for i in range(100))
    n = search_ops.PHRASE_MAX
    assert search_ops.match_query("BODY", long) == f'{{body}} : ("{long[:n]}" AND "{long[-n:]}")'


async def test_text_never_matches_across_header_and_body(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TEXT is headers or body, each on its own: a needle that exists only if
    the header section ran on into the body matches neither (as ``instr()``
    on each column), while each half does."""
    s = sqlite_store
    box = await _inbox(s)
    await s.append(box.id, [AppendItem(make_message(subject="endofhead", body="startofbody"))])
    with sqlite3.connect(s.db_path) as conn:
        headers, body = conn.execute("SELECT headers, body FROM message_text").fetchone()
    assert body.startswith("startofbody")
    tail = headers.rstrip("\n").rsplit("\n", 1)[-1][-6:]           # the last header's end
    for needle in (tail + "\nstart", tail + "start", "\nstartof", tail[-3:] + "\nsta"):
        assert await _both(s, box.id, "TEXT", needle, monkeypatch) == set(), needle
    assert await _both(s, box.id, "TEXT", tail, monkeypatch) == {1}
    assert await _both(s, box.id, "TEXT", "startofbody", monkeypatch) == {1}
    assert await _both(s, box.id, "TEXT", "endofhead", monkeypatch) == {1}
    assert await _both(s, box.id, "BODY", "endofhead", monkeypatch) == set()


async def test_long_needles_are_checked(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above PHRASE_MAX only the needle's two ends are looked up: a message
    holding both ends but not the needle, or the ends in different columns,
    is a candidate that the check must drop."""
    s = sqlite_store
    box = await _inbox(s)
    n = search_ops.PHRASE_MAX
    head, mid, end = "h" * 5 + "-start-of-it-" + "0123456789abcdefghij", "/middle/", \
        "the-end-of-it-" + "zyxwvutsrqponmlkjihgfedcba"
    needle = head + mid + end
    assert len(head) >= n and len(end) >= n
    bodies = [needle, head + " something else " + end, "pre " + needle + " post", head]
    await s.append(box.id, [AppendItem(make_message(subject=f"l{i}", body=b))
                            for i, b in enumerate(bodies)])
    await s.append(box.id, [AppendItem(make_message(subject=end, body=head))])  # split over columns
    assert await _both(s, box.id, "BODY", needle, monkeypatch) == {1, 3}
    assert await _both(s, box.id, "TEXT", needle, monkeypatch) == {1, 3}
    assert _raw_index(s, "TEXT", needle) == {1, 2, 3, 5}                 # candidates only
    exact = needle[:n]
    assert search_ops.exact_match(exact)
    assert await _both(s, box.id, "BODY", exact.upper(), monkeypatch) == {1, 2, 3, 4, 5}


async def test_nul_in_needle_is_scanned(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NUL cannot go into an FTS5 query (it ends the string): such a needle
    must still be answered, not fail."""
    s = sqlite_store
    box = await _inbox(s)
    await s.append(box.id, [AppendItem(make_message(body="plain text"))])
    assert await _both(s, box.id, "BODY", "pla\x00in", monkeypatch) == set()
    assert await _both(s, box.id, "TEXT", "\x00\x00\x00", monkeypatch) == set()


async def test_pending_rows_found_by_exact_and_checked_needles(sqlite_store: SqliteStore) -> None:
    """A message committed but not yet indexed (fts_pending, writer.py) is
    found by every kind of needle; once indexed, the same answers."""
    s = sqlite_store
    box = await _inbox(s)
    bodies = ["indexed needle-one", "pending needle-one", "pending x\ufffdx " + "q" * 40]
    await s.append(box.id, [AppendItem(make_message(subject=f"p{i}", body=b))
                            for i, b in enumerate(bodies)])
    conn = sqlite3.connect(s.db_path, isolation_level=None)
    try:
        # Put messages 2 and 3 back to "committed, not indexed" as the
        # deferring writer leaves them.
        conn.execute("BEGIN")
        search_ops.unindex_messages(conn, [2, 3])
        search_ops.defer_messages(conn, [2, 3])
        conn.execute("COMMIT")
        assert _raw_index(s, "BODY", "needle-one") == {1}

        def search(needle: str) -> set[int]:
            return search_ops.search_text(conn, box.id, "BODY", needle)

        search_ops.SCAN_BELOW, saved = 0, search_ops.SCAN_BELOW
        try:
            for indexed in (False, True):
                if indexed:
                    conn.execute("BEGIN")
                    assert search_ops.index_pending(conn) == 2
                    conn.execute("COMMIT")
                    assert _raw_index(s, "BODY", "needle-one") == {1, 2}
                assert search("NEEDLE-ONE") == {1, 2}              # exact phrase
                assert search("pending") == {2, 3}
                assert search("x\ufffdx") == {3}                   # checked
                assert search("x\ufffex") == set()
                assert search("pending x\ufffdx " + "q" * 40) == {3}  # long, checked
                assert search("nd") == {1, 2, 3}                    # scanned
        finally:
            search_ops.SCAN_BELOW = saved
        conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


async def test_exact_needles_read_no_text(sqlite_store: SqliteStore) -> None:
    """The point of the phrase: an exact needle is answered from the index
    alone. Shown by blanking a message's stored text behind the index's back:
    the exact lookup still finds it, a checked one (long needle) no longer
    does. (The database is left inconsistent on purpose; it is thrown away.)"""
    s = sqlite_store
    box = await _inbox(s)
    long = "a-long-needle-" * 4
    await s.append(box.id, [AppendItem(make_message(body="findme " + long))])
    with sqlite3.connect(s.db_path, isolation_level=None) as conn:
        search_ops.SCAN_BELOW, saved = 0, search_ops.SCAN_BELOW
        try:
            assert search_ops.search_text(conn, box.id, "BODY", "findme") == {1}
            assert search_ops.search_text(conn, box.id, "BODY", long) == {1}
            conn.execute("UPDATE message_text SET body = ''")
            assert search_ops.search_text(conn, box.id, "BODY", "findme") == {1}
            assert search_ops.search_text(conn, box.id, "BODY", long) == set()
        finally:
            search_ops.SCAN_BELOW = saved


def test_migration_to_positions_keeps_pending_rows_single(tmp_path: Path) -> None:
    """A database at schema 5 (position-less index) with a deferred message:
    the migration rebuilds the index over every row, pending ones included,
    and empties the pending list so none is indexed twice."""
    db = tmp_path / "v5.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    v5 = 5
    for script in _MIGRATIONS[:v5]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {v5}")
    cols = search_ops.TEXT_COLUMNS
    for i, body in enumerate(["indexed words here", "pending words here"], 1):
        conn.execute("INSERT INTO messages (id, blob_id, size, facts, envelope, body,"
                     " bodystructure) VALUES (?, ?, 1, x'', x'', x'', x'')", (i, f"b{i}"))
        conn.execute("INSERT INTO message_text (message_id, headers, body) VALUES (?, '', ?)",
                     (i, body))
    conn.execute(f"INSERT INTO message_fts (rowid, {cols}) SELECT message_id, {cols}"
                 " FROM message_text WHERE message_id = 1")
    conn.execute("INSERT INTO fts_pending (message_id) VALUES (2)")
    migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "detail='full'" in conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'message_fts'").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM fts_pending").fetchone()[0] == 0
    conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")
    q = search_ops.match_query("BODY", "words here")
    assert sorted(r[0] for r in conn.execute(
        "SELECT rowid FROM message_fts WHERE message_fts MATCH ?", (q,))) == [1, 2]
    # Removing the once-pending message works (it was indexed exactly once).
    conn.execute("BEGIN")
    search_ops.unindex_messages(conn, [2])
    conn.execute("DELETE FROM message_text WHERE message_id = 2")
    conn.execute("COMMIT")
    conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")
    conn.close()
