"""Ingest in worker processes: the CPU half of the one ingest path
(store/ingest.py ``prepare``: MIME parse, search text, facts; zstd; SHA-256;
the blob file of a big message) run outside the server process, so that it
does not compete for the GIL with the event loop and the SQLite writer.

Why processes: on threads, parsing (pure Python) holds the GIL, and every
SQLite statement of the writer and every wake-up of the event loop must win it
back, so a 2-core machine ran deliveries at about one core; measured on the
LMTP bench, ingest threads cost ~0.55 ms a message in-server against 0.33 ms
alone. A worker process parses in parallel on the other core.

Protocol (one socketpair per worker; the event loop reads it, no helper
threads): the server sends ``<4-byte big-endian length><raw message>``; the
worker answers each request in order with ``<length><pickle>`` of
a tuple of the PreparedMessage fields after ``raw`` (in order), or an
error text. A big message's
blob is written and fsynced by the worker before it answers, exactly as the
ingest thread did, so the commit that references it still comes after it is
durable. A worker that dies is replaced on the next request, and what it
held is handed to the new one once (preparing is idempotent); a second loss
fails the request (LMTP answers 451, APPEND NO).

A worker runs ``store.ingest.worker_main`` (BLOB_ROOT INLINE_MAX FD).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

from mailbag.store.ingest import FRAME, PreparedMessage

log = logging.getLogger("mailbag.store")

_LEN = FRAME
# The worker imports store/ingest.py only (mime/ and blobs.py), not this
# package: a quicker start, and nothing of the server's state.
_BOOT = ("import sys; from mailbag.store.ingest import worker_main;"
         " sys.exit(worker_main(sys.argv[1:]))")


class WorkerDied(RuntimeError):
    """The worker holding a request exited before answering it."""


class _Worker:
    def __init__(self, proc: subprocess.Popen[bytes], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proc = proc
        self.reader = reader
        self.writer = writer
        self.pending: deque[tuple[asyncio.Future[PreparedMessage], bytes]] = deque()
        self.alive = True
        self.task: asyncio.Task[None] | None = None


class IngestProcesses:
    """A few worker processes; each request goes to the least busy one."""

    def __init__(self, blob_root: Path, inline_max: int, count: int) -> None:
        self.blob_root = blob_root
        self.inline_max = inline_max
        self.count = max(1, count)
        self.workers: list[_Worker] = []
        self.closed = False
        self._spawning = asyncio.Lock()

    async def _spawn(self) -> _Worker:
        parent, child = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT,
                 str(self.blob_root), str(self.inline_max), str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=1 << 20)
        worker = _Worker(proc, reader, writer)
        worker.task = asyncio.get_running_loop().create_task(self._read(worker))
        return worker

    async def _read(self, worker: _Worker) -> None:
        error = "ingest worker exited"
        try:
            while True:
                head = await worker.reader.readexactly(_LEN.size)
                data = await worker.reader.readexactly(_LEN.unpack(head)[0])
                fut, raw = worker.pending.popleft()
                value = pickle.loads(data)
                if fut.done():
                    continue
                if isinstance(value, tuple):
                    fut.set_result(PreparedMessage(raw, *value))
                else:
                    fut.set_exception(RuntimeError(f"ingest failed: {value}"))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            error = f"ingest worker exited ({type(exc).__name__})"
        finally:
            worker.alive = False
            while worker.pending:
                fut, _raw = worker.pending.popleft()
                if not fut.done():
                    fut.set_exception(WorkerDied(error))
            if not self.closed:
                log.error("ingest worker %d stopped; a new one starts on demand",
                          worker.proc.pid)

    async def prepare(self, raw: bytes) -> PreparedMessage:
        try:
            return await self._prepare(raw)
        except WorkerDied:
            # Preparing is idempotent (a blob is written under its hash), so
            # a request lost with its worker is simply given to a new one.
            return await self._prepare(raw)

    async def _prepare(self, raw: bytes) -> PreparedMessage:
        if self.closed:
            raise RuntimeError("the store is not open")
        live = [w for w in self.workers if w.alive]
        if len(live) < self.count and all(w.pending for w in live):
            # Another worker only when all are busy: at low rates one is enough.
            async with self._spawning:
                self.workers = [w for w in self.workers if w.alive]
                if len(self.workers) < self.count and all(w.pending for w in self.workers):
                    self.workers.append(await self._spawn())
            live = [w for w in self.workers if w.alive]
        if not live:
            raise RuntimeError("no ingest worker")
        worker = min(live, key=lambda w: len(w.pending))
        fut: asyncio.Future[PreparedMessage] = asyncio.get_running_loop().create_future()
        worker.pending.append((fut, raw))
        # One write, so one send(): each wakes the worker.
        worker.writer.write(_LEN.pack(len(raw)) + raw)
        return await fut

    async def close(self) -> None:
        """Let the workers finish what they were given, then stop them."""
        self.closed = True
        loop = asyncio.get_running_loop()
        for w in self.workers:
            if w.alive:
                w.writer.write_eof()
        for w in self.workers:
            if w.task is not None:
                await asyncio.wait([w.task], timeout=30)
            w.writer.close()
            try:
                await loop.run_in_executor(None, w.proc.wait, 10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                await loop.run_in_executor(None, w.proc.wait)
        self.workers = []
