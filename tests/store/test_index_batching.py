"""The SQLite writer indexes message text once per transaction (writer.py,
search_ops.py): jobs queue (message id, text) and the writer inserts them all
before COMMIT. These tests put several jobs in ONE group-commit batch (a
first job holds the writer while the rest queue behind it) and check that
the index ends up exactly right: a message stored and dropped in the same
batch leaves no index row, a reused rowid is indexed with its new text, a
failed job's drop is rolled back with it, and FTS5's own integrity check
(against the content table) passes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest

from conftest import make_message
from mailbag.store.api import INBOX, AppendItem
from mailbag.store.sqlite import SqliteStore, message_ops, search_ops
from mailbag.store.sqlite.writer import Txn, Writer


def _indexed(s: SqliteStore, needle: str) -> list[int]:
    with sqlite3.connect(s.db_path) as conn:
        q = search_ops.match_query("TEXT", needle.casefold())
        return sorted(r[0] for r in conn.execute(
            "SELECT rowid FROM message_fts WHERE message_fts MATCH ?", (q,)))


def _integrity(s: SqliteStore) -> None:
    # rank 1: also compare the index with the message_text content table.
    with sqlite3.connect(s.db_path) as conn:
        conn.execute("INSERT INTO message_fts (message_fts, rank) VALUES ('integrity-check', 1)")


async def _one_batch(
    s: SqliteStore, jobs: list[Callable[[Txn], Any]]
) -> list[concurrent.futures.Future[Any]]:
    """Run ``jobs`` in order in a single write transaction."""
    writer = s._writer
    assert isinstance(writer, Writer)
    started, gate = threading.Event(), threading.Event()

    def hold(txn: Txn) -> None:
        started.set()
        gate.wait()

    held = writer.submit(hold)
    await asyncio.get_running_loop().run_in_executor(None, started.wait)
    before = writer.transactions     # the holding batch is formed and running
    futures = [writer.submit(job) for job in jobs]
    gate.set()
    await asyncio.wrap_future(held)
    await asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)
    assert writer.transactions == before + 2  # the holder's batch, then all of ``jobs``
    return futures


async def test_store_and_drop_in_one_batch(sqlite_store: SqliteStore) -> None:
    s = sqlite_store
    acc = await s.create_account("a", "h")
    box = await s.get_mailbox(acc.id, INBOX)
    assert box is not None
    committed = make_message(body="committed-earlier")
    await s.append(box.id, [AppendItem(committed)])
    kept, gone, reused, own = (make_message(body=b) for b in (
        "kept-needle", "gone-needle", "reused-needle", "own-job-needle"))
    prep = {raw: await s.prepare(raw) for raw in (kept, gone, reused, own)}
    deleted = frozenset({"\\Deleted"})

    def append(raw: bytes, flags: frozenset[str] = frozenset()) -> Callable[[Txn], Any]:
        return lambda t: message_ops.append(t, box.id, [AppendItem(raw, flags)], [prep[raw]])

    def expunge(t: Txn) -> list[int]:
        return message_ops.expunge(t, box.id, None)

    def drop_then_fail(t: Txn) -> None:
        message_ops.store_flags(t, box.id, [1, 2], "add", deleted, None)
        message_ops.expunge(t, box.id, None)
        raise RuntimeError("this job is rolled back")

    def own_job(t: Txn) -> None:
        append(own, deleted)(t)
        expunge(t)

    futures = await _one_batch(s, [
        append(kept),                # uid 2, queued for the index
        drop_then_fail,              # drops uid 1 (indexed) and 2 (queued), then fails
        append(gone, deleted),       # uid 3: the highest message id ...
        expunge,                     # ... dropped by a later job of the batch
        append(reused),              # uid 4 takes that message id again
        own_job,                     # stored and dropped by one job
    ])
    with pytest.raises(RuntimeError):
        futures[1].result()
    assert futures[3].result() == [3]

    _integrity(s)
    with sqlite3.connect(s.db_path) as conn:
        rows = conn.execute(
            "SELECT t.body, m.message_id FROM mailbox_messages m"
            " JOIN message_text t ON t.message_id = m.message_id").fetchall()
        n_text = conn.execute("SELECT count(*) FROM message_text").fetchone()[0]
    ids = {body.strip(): message_id for body, message_id in rows}
    assert len(ids) == n_text == 3
    assert _indexed(s, "committed-earlier") == [ids["committed-earlier"]]
    assert _indexed(s, "kept-needle") == [ids["kept-needle"]]
    assert _indexed(s, "reused-needle") == [ids["reused-needle"]]
    assert _indexed(s, "gone-needle") == []
    assert _indexed(s, "own-job-needle") == []
    assert await s.search_text(box.id, "BODY", "reused-needle") == {4}


async def test_drop_committed_then_reuse_id_in_one_batch(sqlite_store: SqliteStore) -> None:
    """A message indexed by an earlier transaction is unindexed at once; a
    new message given its rowid in the same batch is indexed at commit."""
    s = sqlite_store
    acc = await s.create_account("a", "h")
    box = await s.get_mailbox(acc.id, INBOX)
    assert box is not None
    await s.append(box.id, [AppendItem(make_message(body="old-text"), frozenset({"\\Deleted"}))])
    new = make_message(body="new-text")
    prepared = await s.prepare(new)
    await _one_batch(s, [
        lambda t: message_ops.expunge(t, box.id, None),
        lambda t: message_ops.append(t, box.id, [AppendItem(new)], [prepared]),
    ])
    _integrity(s)
    assert _indexed(s, "old-text") == []
    assert len(_indexed(s, "new-text")) == 1
    assert await s.search_text(box.id, "BODY", "new-text") == {2}


async def test_later_job_drops_queued_message(sqlite_store: SqliteStore) -> None:
    """Stored by one job, dropped by the next, nothing stored after it: the
    queued index entry is struck, so no index row points at missing text."""
    s = sqlite_store
    acc = await s.create_account("a", "h")
    box = await s.get_mailbox(acc.id, INBOX)
    assert box is not None
    raw = make_message(body="short-lived")
    prepared = await s.prepare(raw)
    await _one_batch(s, [
        lambda t: message_ops.append(
            t, box.id, [AppendItem(raw, frozenset({"\\Deleted"}))], [prepared]),
        lambda t: message_ops.expunge(t, box.id, None),
    ])
    _integrity(s)
    assert _indexed(s, "short-lived") == []
