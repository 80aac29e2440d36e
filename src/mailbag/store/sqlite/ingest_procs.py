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
threads): the server sends ``<4-byte big-endian length><raw message>`` (the
requests of one turn of the event loop in one write); the
worker answers each request in order (a burst's answers grouped in one
send, store/ingest.py ANSWER_BATCH) with ``<length><pickle>`` of
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
from typing import cast

from mailbag.store.ingest import FRAME, PreparedMessage

log = logging.getLogger("mailbag.store")

_LEN = FRAME
# The worker imports store/ingest.py only (mime/ and blobs.py), not this
# package: a quicker start, and nothing of the server's state.
_BOOT = ("import sys; from mailbag.store.ingest import worker_main;"
         " sys.exit(worker_main(sys.argv[1:]))")


class WorkerDied(RuntimeError):
    """The worker holding a request exited before answering it."""


class _Worker(asyncio.Protocol):
    """One worker process and the server's end of its socket: requests go
    out in order, answers come back in the same order."""

    def __init__(self, pool: IngestProcesses, proc: subprocess.Popen[bytes]) -> None:
        self.pool = pool
        self.proc = proc
        self.transport: asyncio.Transport | None = None
        self.pending: deque[tuple[asyncio.Future[PreparedMessage], bytes]] = deque()
        self.alive = True
        self.closed = asyncio.get_running_loop().create_future()
        self.inbuf = bytearray()
        # Requests queued during this turn of the event loop: a burst of
        # pipelined messages goes out in one write (one wake-up of the worker).
        self.outbox: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, raw: bytes) -> None:
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outbox.append(_LEN.pack(len(raw)))
        self.outbox.append(raw)

    def flush(self) -> None:
        if self.outbox and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.outbox))
        self.outbox.clear()

    def data_received(self, data: bytes) -> None:
        # Protocol callbacks rather than a reader task: no coroutine step
        # per answer, and every answer that arrived in one read is handled
        # in one go.
        buf = self.inbuf
        buf += data
        pos = 0
        size = len(buf)
        while size - pos >= _LEN.size:
            need = _LEN.unpack_from(buf, pos)[0]
            start = pos + _LEN.size
            if size - start < need:
                break
            with memoryview(buf) as view:
                value = pickle.loads(view[start:start + need])
            pos = start + need
            fut, raw = self.pending.popleft()
            if fut.done():
                continue
            if isinstance(value, tuple):
                fut.set_result(PreparedMessage(raw, *value))
            else:
                fut.set_exception(RuntimeError(f"ingest failed: {value}"))
        if pos:
            del buf[:pos]

    def eof_received(self) -> bool | None:
        return None              # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        error = "ingest worker exited" + (f" ({type(exc).__name__})" if exc else "")
        while self.pending:
            fut, _raw = self.pending.popleft()
            if not fut.done():
                fut.set_exception(WorkerDied(error))
        if not self.pool.closed:
            log.error("ingest worker %d stopped; a new one starts on demand", self.proc.pid)
        if not self.closed.done():
            self.closed.set_result(None)


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
        loop = asyncio.get_running_loop()
        worker = _Worker(self, proc)
        await loop.create_connection(lambda: worker, sock=parent)
        return worker

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
        worker.send(raw)
        return await fut

    async def close(self) -> None:
        """Let the workers finish what they were given, then stop them."""
        self.closed = True
        loop = asyncio.get_running_loop()
        for w in self.workers:
            if w.alive and w.transport is not None:
                w.flush()
                w.transport.write_eof()
        for w in self.workers:
            await asyncio.wait([w.closed], timeout=30)
            if w.transport is not None:
                w.transport.close()
            try:
                await loop.run_in_executor(None, w.proc.wait, 10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                await loop.run_in_executor(None, w.proc.wait)
        self.workers = []
