"""Ingest in worker processes (store/sqlite/ingest_procs.py), which the
server uses for LMTP and APPEND: the same stored result as the ingest
threads, big messages as durable blob files, many recipients sharing one
copy, and a worker that dies replaced without losing the request."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest_asyncio

from mailbag.store.api import AppendItem, AppendResult, OverQuota
from mailbag.store.sqlite import SqliteStore
from mailbag.store.sqlite.store import INLINE_MAX


def message(n: int, body: bytes = b"") -> bytes:
    return (b"From: Ann <ann@example.org>\r\nTo: bob@example.org\r\n"
            b"Subject: ingest test %d\r\nMessage-ID: <m%d@example.org>\r\n\r\n"
            b"hello number %d\r\n" % (n, n, n)) + body


@pytest_asyncio.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    procs = SqliteStore(tmp_path / "procs", readers=1, ingest_processes=2)
    threads = SqliteStore(tmp_path / "threads", readers=1, ingest_workers=1)
    await procs.open()
    await threads.open()
    try:
        yield procs, threads
    finally:
        await procs.close()
        await threads.close()


async def test_same_prepared_message_as_the_ingest_threads(stores):
    procs, threads = stores
    raw = message(1, b"caf\xc3\xa9 ol\xc3\xa9\r\n")
    a, b = await procs.prepare(raw), await threads.prepare(raw)
    assert a == b
    assert a.raw is raw and a.inline is not None


async def test_deliveries_land_once_and_are_searchable(stores):
    procs, _threads = stores
    accounts = [await procs.create_account(f"u{i}", "x") for i in range(3)]
    boxes = [(await procs.get_mailbox(a.id, "INBOX")).id for a in accounts]  # type: ignore[union-attr]
    now = datetime.now(UTC)
    results = await asyncio.gather(*(
        procs.deliver(boxes, AppendItem(message(n), frozenset(), now)) for n in range(40)))
    for per_box in results:
        assert all(isinstance(r, AppendResult) for r in per_box)
    for box in boxes:
        assert len(await procs.message_list(box)) == 40
        hits = await procs.search_text(box, "BODY", "number 17")
        assert len(hits) == 1
    # One message row per message whatever the number of recipients.
    conn = procs._quick_conn()
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 40
    # Both workers were used once four requests were in flight.
    assert procs._procs is not None and len(procs._procs.workers) == 2


async def test_big_message_is_a_durable_blob_before_commit(stores):
    procs, _threads = stores
    acct = await procs.create_account("big", "x")
    box = (await procs.get_mailbox(acct.id, "INBOX")).id  # type: ignore[union-attr]
    big = message(2, os.urandom(INLINE_MAX + 4096).hex().encode()[: INLINE_MAX * 2])
    prepared = await procs.prepare(big)
    assert prepared.inline is None
    assert procs.blobs.path(prepared.blob_id).exists()    # written by the worker
    result = await procs.append(box, [AppendItem(big, frozenset(), datetime.now(UTC))])
    assert isinstance(result, AppendResult)
    records = await procs.message_list(box)
    assert len(records) == 1
    assert await procs.read_blob(prepared.blob_id) == big


async def test_a_dead_worker_is_replaced_and_its_request_retried(stores):
    procs, _threads = stores
    await procs.prepare(message(3))
    assert procs._procs is not None
    worker = procs._procs.workers[0]
    # Stopped, it holds the next request for sure; then it dies with it.
    os.kill(worker.proc.pid, signal.SIGSTOP)
    task = asyncio.ensure_future(procs.prepare(message(4)))
    while not worker.pending:
        await asyncio.sleep(0.01)
    os.kill(worker.proc.pid, signal.SIGKILL)
    await asyncio.get_running_loop().run_in_executor(None, worker.proc.wait)
    # The request it held is handed to a fresh worker.
    msg = await task
    assert msg.size == len(message(4))
    assert all(w.proc.pid != worker.proc.pid for w in procs._procs.workers if w.alive)


async def test_a_burst_in_one_write_is_answered_request_by_request(stores):
    """Requests made in one turn of the event loop go to a worker in one
    write and are read back in one go: each answer must still meet its own
    message (a mix-up would pair one message's bytes with another's facts)."""
    procs, threads = stores
    raws = [message(100 + n, b"x" * (n * 37)) for n in range(30)]
    got = await asyncio.gather(*(procs.prepare(r) for r in raws))
    for raw, prepared in zip(raws, got, strict=True):
        assert prepared.raw is raw
        assert prepared == await threads.prepare(raw)


async def test_one_mailbox_over_quota_at_delivery_is_rolled_back(stores):
    """With one mailbox the delivery job has no savepoint of its own: the
    failure comes back as that mailbox's result and nothing of it stays."""
    procs, _threads = stores
    acct = await procs.create_account("tight", "x")
    box = (await procs.get_mailbox(acct.id, "INBOX")).id  # type: ignore[union-attr]
    await procs.set_quota(acct.id, 200)
    now = datetime.now(UTC)
    before = await procs.get_mailbox(acct.id, "INBOX")
    [result] = await procs.deliver([box], AppendItem(message(7, b"y" * 400), frozenset(), now))
    assert isinstance(result, OverQuota)
    after = await procs.get_mailbox(acct.id, "INBOX")
    assert after == before                       # uidnext, counters, modseq untouched
    assert await procs.message_list(box) == []
    [ok] = await procs.deliver([box], AppendItem(b"Subject: s\r\n\r\nhi\r\n", frozenset(), now))
    assert isinstance(ok, AppendResult) and ok.uids == (before.uidnext,)  # type: ignore[union-attr]
