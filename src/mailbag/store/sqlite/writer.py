"""The single writer thread of the SQLite backend, with group commit.

Every mutation is a job: a function run inside a write transaction on the
writer's own connection. The writer takes the first queued job, then every
job that queued up meanwhile (while the previous batch was being fsynced),
and runs them all in ONE transaction, each inside its own SAVEPOINT so a job
that raises (NotFound, OverQuota, ...) is rolled back alone. Only after COMMIT
returns does any caller get its result, so an acknowledged write is durable;
a pipeline of APPENDs from many clients costs one fsync per batch. Callers
on an event loop (``submit_async``, which the store uses) get the results of
a whole batch in one hand-over to their loop, not one thread-safe call each.

After the commit the writer publishes "mailbox M reached modseq N" events and
deletes the blobs whose last message row went away in the batch.

The SEARCH text index (search_ops.py, FTS5) is written once per transaction,
not per job: FTS5 keeps new terms in memory and writes them out at every
savepoint boundary, and with a savepoint per job (and implicit statement
savepoints inside one) indexing each message as it is stored cost more than
storing it. So a job only notes (message id, text) in its effects, and the
writer inserts all of them after the last job's RELEASE and before COMMIT,
in the same transaction: a committed message is always indexed, and if the
index insert fails the whole batch fails like a failed COMMIT. A message
dropped in the batch that stored it is struck from the list instead of being
unindexed (it never was indexed); one indexed by an earlier transaction is
unindexed at once, while its text is still there to tell FTS5 what to remove.

Deferred indexing (``fts_batch`` > 0; the server sets it): FTS5 writes a new
segment at every COMMIT, so with small group commits (four LMTP connections
with one message in flight each commit one to four messages at a time) the
index cost ~0.2-0.3 ms of writer time per message, most of the writer's
work. Instead a transaction then only lists its messages in ``fts_pending``
(same transaction, so the list is exact after a crash), and the writer
indexes the list in transactions of its own, FTS_CHUNK messages each: once
it has had no job for FTS_IDLE seconds (chunk after chunk while none
arrives), after each batch of jobs while ``fts_batch`` or more are waiting,
and all of it at stop and at start (what a crash left). SEARCH scans the
pending ones (search_ops.py). So a burst of deliveries is not held up by
the index, which catches up when the burst is over, in bigger transactions
that cost less per message: on bench/lmtp.py, index chunks of 256 cost ~0.10
ms of writer time a message and chunks of 512 and more ~0.08.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mailbag.store.blobs import BlobStore
from mailbag.store.sqlite import search_ops
from mailbag.store.sqlite.schema import configure, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 512
# Deferred index entries are written after this long without a job, and
# then FTS_CHUNK messages a transaction for as long as no job is waiting
# (so a job that arrives meanwhile waits for one chunk, ~40 ms, at most).
FTS_IDLE = 0.05
FTS_CHUNK = 512


@dataclass(slots=True)
class Effects:
    """What a job did that matters after commit."""

    touched: dict[int, int] = field(default_factory=dict)   # mailbox id -> highestmodseq
    dropped_blobs: set[str] = field(default_factory=set)     # blob ids with no message row
    # message id -> its message_text columns, to index before COMMIT
    index: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # ids queued in ``index`` by EARLIER jobs of the batch that this job dropped
    unqueued: set[int] = field(default_factory=set)

    def merge(self, other: Effects) -> None:
        for mailbox_id, modseq in other.touched.items():
            if modseq > self.touched.get(mailbox_id, 0):
                self.touched[mailbox_id] = modseq
        self.dropped_blobs |= other.dropped_blobs
        # Strike first: a job may drop an earlier job's message and then
        # store a new one under the same (reused) rowid.
        for message_id in other.unqueued:
            self.index.pop(message_id, None)
        self.index.update(other.index)


@dataclass(slots=True)
class Txn:
    """Handed to a job: the open transaction and where to note its effects."""

    conn: sqlite3.Connection
    blobs: BlobStore
    now: float
    effects: Effects
    batch: Effects = field(default_factory=Effects)   # the earlier jobs' merged effects

    def index_text(self, message_id: int, texts: tuple[str, ...]) -> None:
        """Index a new message_text row (TEXT_COLUMNS order) at commit."""
        self.effects.index[message_id] = texts

    def unindex_text(self, message_id: int) -> None:
        """Take a message out of the index; call before its message_text
        row goes. A job that fails is rolled back with its effects, so a
        struck entry of an earlier job comes back with it."""
        if self.effects.index.pop(message_id, None) is not None:
            return
        if message_id in self.batch.index:
            self.effects.unqueued.add(message_id)
            return
        search_ops.unindex_messages(self.conn, (message_id,))


class _LoopResult:
    """Stands in for a concurrent Future in the batch (``submit_async``):
    the outcome is kept, and the writer hands all the outcomes of a batch
    to the event loop in ONE call_soon_threadsafe after the commit, instead
    of a lock, a notify and a thread-safe call per job (wrap_future)."""

    __slots__ = ("fut", "outbox", "recorded")

    def __init__(self, fut: asyncio.Future[Any], outbox: list[tuple[asyncio.Future[Any], bool, Any]]
                 ) -> None:
        self.fut = fut
        self.outbox = outbox
        self.recorded = False

    def set_running_or_notify_cancel(self) -> bool:
        return not self.fut.cancelled()

    def done(self) -> bool:
        return self.recorded

    def set_result(self, value: Any) -> None:
        self.recorded = True
        self.outbox.append((self.fut, True, value))

    def set_exception(self, exc: BaseException) -> None:
        self.recorded = True
        self.outbox.append((self.fut, False, exc))


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the event loop: complete a batch's futures, in job order."""
    for fut, ok, value in outcomes:
        if fut.done():          # cancelled meanwhile
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


Job = Callable[[Txn], Any]
_Item = tuple[Job, "concurrent.futures.Future[Any] | _LoopResult"]
_STOP = object()


class Writer:
    def __init__(
        self,
        db_path: Path,
        blobs: BlobStore,
        on_commit: Callable[[dict[int, int]], None],
        fts_batch: int = 0,
    ) -> None:
        self._fts_batch = fts_batch
        self._fts_pending = 0          # messages deferred since the last index_pending
        self._db_path = db_path
        self._blobs = blobs
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.transactions = 0          # committed write transactions (tests, metrics)
        self.jobs = 0                  # jobs run
        # submit_async outcomes of the running batch, per event loop
        self._outboxes: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}

    def start(self) -> concurrent.futures.Future[None]:
        """Start the thread; the future completes once the schema is migrated."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="mailbag-sqlite-writer", daemon=True
        )
        self._thread.start()
        return ready

    def submit(self, job: Callable[[Txn], T]) -> concurrent.futures.Future[T]:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the store is not open")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((job, fut))
        return fut

    def submit_async(self, job: Callable[[Txn], T]) -> asyncio.Future[T]:
        """``submit`` for a caller on an event loop: its future is completed
        on that loop, together with the rest of its batch (_LoopResult)."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outboxes[loop] = []
        self._queue.put((job, _LoopResult(fut, outbox)))
        return fut

    def _hand_over(self) -> None:
        """After a batch: pass the outcomes of async callers to their loops."""
        for loop, outbox in list(self._outboxes.items()):
            if outbox:
                done = outbox[:]
                del outbox[:len(done)]
                try:
                    loop.call_soon_threadsafe(_settle, done)
                except RuntimeError:       # that loop is closed: nobody waits
                    self._outboxes.pop(loop, None)

    def stop(self) -> None:
        """Finish queued jobs, then stop the thread (blocks)."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    # -- the thread

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = sqlite3.connect(self._db_path, isolation_level=None, check_same_thread=False)
            configure(conn)
            migrate(conn)
            if conn.execute("SELECT 1 FROM fts_pending LIMIT 1").fetchone():
                self._fts_pending = 1      # left by a crash: index it now
                self._flush_fts(conn)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        self._conn = conn
        ready.set_result(None)
        try:
            stopping = False
            catching_up = False        # indexing while no job waits
            while not stopping:
                try:
                    if not self._fts_pending:
                        first = self._queue.get()
                    elif catching_up:
                        first = self._queue.get_nowait()
                    else:
                        first = self._queue.get(timeout=FTS_IDLE)
                except queue.Empty:
                    self._flush_fts(conn, FTS_CHUNK)
                    catching_up = True
                    continue
                catching_up = False
                if first is _STOP:
                    break
                batch: list[_Item] = [first]  # type: ignore[list-item]
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                self._run_batch(conn, batch)
                self._hand_over()
                if self._fts_batch and self._fts_pending >= self._fts_batch:
                    self._flush_fts(conn, FTS_CHUNK)
            if self._fts_pending:
                self._flush_fts(conn)
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        live = [(job, fut) for job, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        effects = Effects()
        deferred = 0
        outcomes: list[tuple[concurrent.futures.Future[Any] | _LoopResult, bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, fut in live:
                job_effects = Effects()
                txn = Txn(conn, self._blobs, time.time(), job_effects, effects)
                conn.execute("SAVEPOINT job")
                try:
                    result = job(txn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((fut, False, exc))
                else:
                    conn.execute("RELEASE job")
                    effects.merge(job_effects)
                    outcomes.append((fut, True, result))
            if effects.index and self._fts_batch:
                search_ops.defer_messages(conn, sorted(effects.index))
                deferred = len(effects.index)
            elif effects.index:
                search_ops.index_messages(conn, sorted(effects.index.items()))
            conn.execute("COMMIT")
        except BaseException as exc:
            # The commit itself failed (disk full, I/O error): nothing is
            # durable, so every caller in the batch gets the error.
            log.exception("write transaction failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _job, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.transactions += 1
        self.jobs += len(live)
        self._fts_pending += deferred
        try:
            self._on_commit(effects.touched)
        except Exception:
            log.exception("change notification failed")
        # Before answering, so a caller that expunged sees the blob gone.
        self._drop_blobs(conn, effects.dropped_blobs)
        for fut, ok, value in outcomes:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _flush_fts(self, conn: sqlite3.Connection, limit: int | None = None) -> None:
        """Index deferred messages (at most *limit*) in a transaction of
        their own (no caller waits for it; a failure leaves them pending,
        still found by SEARCH's scan, for the next attempt)."""
        pending, self._fts_pending = self._fts_pending, 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = search_ops.index_pending(conn, limit)
            conn.execute("COMMIT")
            if limit is not None and done >= limit:
                # Maybe more (a count left by a crash is not exact).
                self._fts_pending = max(pending - done, 1)
        except sqlite3.Error:
            log.exception("deferred search indexing failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _drop_blobs(self, conn: sqlite3.Connection, blob_ids: set[str]) -> None:
        # A later job in the same batch may have re-created the message row
        # (a duplicate delivery), so check again before unlinking. A crash
        # here leaves an orphan file, which SqliteStore.gc() removes.
        for blob_id in blob_ids:
            row = conn.execute("SELECT 1 FROM messages WHERE blob_id = ?", (blob_id,)).fetchone()
            if row is None:
                try:
                    self._blobs.delete(blob_id)
                except OSError:
                    log.exception("could not delete blob %s", blob_id)
