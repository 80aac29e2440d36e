"""Deferred search indexing (store/sqlite/writer.py "Deferred indexing",
which the server turns on for fast LMTP delivery): a committed message is
found by SEARCH before it is in the FTS index, is indexed (FTS_CHUNK at a
time, oldest first) after a batch of jobs once the list is long, when the
writer idles, at stop, or at the next start after a crash, and an expunged
pending message simply leaves the list."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mailbag.store.api import INBOX, AppendItem, MailboxInfo
from mailbag.store.sqlite import SqliteStore, search_ops, writer


def message(word: str) -> bytes:
    return (f"From: Ann <ann@example.org>\r\nSubject: about {word}\r\n\r\n"
            f"the word is {word}\r\n").encode()


def pending(s: SqliteStore) -> int:
    with sqlite3.connect(s.db_path) as conn:
        return int(conn.execute("SELECT count(*) FROM fts_pending").fetchone()[0])


def indexed_ids(s: SqliteStore, needle: str) -> list[int]:
    with sqlite3.connect(s.db_path) as conn:
        q = search_ops.match_query("BODY", needle)
        return sorted(r[0] for r in conn.execute(
            "SELECT rowid FROM message_fts WHERE message_fts MATCH ?", (q,)))


def indexed(s: SqliteStore, needle: str) -> int:
    return len(indexed_ids(s, needle))


async def settled(s: SqliteStore, left: int = 0) -> None:
    """Until the writer has indexed what was pending but *left* (it does so
    after answering the job that filled the batch, or when idle)."""
    for _ in range(3000):
        if pending(s) == left:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pending(s)} pending, not {left}")


@pytest.fixture(autouse=True)
def through_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_ops, "SCAN_BELOW", 0)
    # No indexing on idle unless a test asks (a slow machine would otherwise
    # index between two steps that look at the pending list).
    monkeypatch.setattr(writer, "FTS_IDLE", 3600)


@pytest_asyncio.fixture
async def deferred(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path, readers=1, ingest_workers=1, fts_batch=4)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def inbox(s: SqliteStore) -> MailboxInfo:
    acc = await s.create_account("alice", "x")
    box = await s.get_mailbox(acc.id, INBOX)
    assert box is not None
    return box


async def test_found_before_indexed_then_indexed_in_one_batch(deferred):
    s = deferred
    box = await inbox(s)
    for word in ("walrus", "narwhal", "walrus-two"):
        await s.append(box.id, [AppendItem(message(word))])
    assert pending(s) == 3 and indexed(s, "walrus") == 0
    assert await s.search_text(box.id, "BODY", "walrus") == {1, 3}
    assert await s.search_text(box.id, "SUBJECT", "narwhal") == {2}
    assert await s.search_text(box.id, "BODY", "wal") == {1, 3}      # 3-char path
    await s.append(box.id, [AppendItem(message("walrus-four"))])    # the 4th: a batch
    await settled(s)
    assert indexed(s, "walrus") == 3
    assert await s.search_text(box.id, "BODY", "walrus") == {1, 3, 4}


async def test_expunged_while_pending_leaves_the_list(deferred):
    s = deferred
    box = await inbox(s)
    await s.append(box.id, [AppendItem(message("okapi")), AppendItem(message("tapir"))])
    await s.store_flags(box.id, [1], "add", frozenset({"\\Deleted"}))
    assert await s.expunge(box.id) == [1]
    assert pending(s) == 1
    assert await s.search_text(box.id, "BODY", "okapi") == set()
    assert await s.search_text(box.id, "BODY", "tapir") == {2}


async def test_a_long_list_loses_a_chunk_after_each_batch(deferred, monkeypatch):
    monkeypatch.setattr(writer, "FTS_CHUNK", 2)
    s = deferred                                     # fts_batch=4
    box = await inbox(s)
    for word in ("ibex", "ibex-two", "ibex-three", "ibex-four"):
        await s.append(box.id, [AppendItem(message(word))])
    await settled(s, left=2)                         # the two oldest indexed
    assert indexed_ids(s, "ibex") == [1, 2]
    await s.append(box.id, [AppendItem(message("ibex-five"))])
    assert pending(s) == 3                           # under fts_batch: nothing indexed
    assert await s.search_text(box.id, "BODY", "ibex") == {1, 2, 3, 4, 5}


async def test_idle_catch_up_takes_every_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "FTS_CHUNK", 2)
    monkeypatch.setattr(writer, "FTS_IDLE", 0.01)
    s = SqliteStore(tmp_path, readers=1, ingest_workers=1, fts_batch=1000)
    await s.open()
    try:
        box = await inbox(s)
        await s.append(box.id, [AppendItem(message(f"kiwi{i}")) for i in range(5)])
        await settled(s)
        assert indexed(s, "kiwi") == 5
    finally:
        await s.close()


async def test_indexed_when_idle_and_at_stop(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "FTS_IDLE", 0.01)
    s = SqliteStore(tmp_path, readers=1, ingest_workers=1, fts_batch=1000)
    await s.open()
    box = await inbox(s)
    await s.append(box.id, [AppendItem(message("quokka"))])
    # No more jobs: the writer indexes it once idle.
    await settled(s)
    assert indexed(s, "quokka") == 1
    monkeypatch.setattr(writer, "FTS_IDLE", 3600)
    await s.append(box.id, [AppendItem(message("wombat"))])
    assert pending(s) == 1
    await s.close()                                  # indexed at stop
    s2 = SqliteStore(tmp_path, readers=1, ingest_workers=1)
    await s2.open()
    try:
        assert pending(s2) == 0 and indexed(s2, "wombat") == 1
    finally:
        await s2.close()


async def test_left_pending_by_a_crash_is_indexed_at_start(tmp_path):
    s = SqliteStore(tmp_path, readers=1, ingest_workers=1)
    await s.open()
    box = await inbox(s)
    await s.append(box.id, [AppendItem(message("axolotl"))])
    await s.close()
    # What a kill -9 between a commit and the batch's indexing leaves.
    with sqlite3.connect(s.db_path) as conn:
        cols = search_ops.TEXT_COLUMNS
        conn.execute(f"INSERT INTO message_fts (message_fts, rowid, {cols})"
                     f" SELECT 'delete', message_id, {cols} FROM message_text")
        conn.execute("INSERT INTO fts_pending SELECT message_id FROM message_text")
    assert indexed(s, "axolotl") == 0 and pending(s) == 1
    s2 = SqliteStore(tmp_path, readers=1, ingest_workers=1)
    await s2.open()
    try:
        assert pending(s2) == 0 and indexed(s2, "axolotl") == 1
        assert await s2.search_text(box.id, "BODY", "axolotl") == {1}
    finally:
        await s2.close()
