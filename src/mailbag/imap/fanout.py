"""Writing short responses to many connections at once: the IDLE push
(RFC 9051 §6.3.13, RFC 2177) of one change to every idler of a mailbox.

Telling 10,000 idlers of a new message is 10,000 socket sends, and over TLS
10,000 record encryptions too. The sends are most of it: each is a few
microseconds in the kernel (on loopback it also runs the receiver's TCP
input). So the event loop's thread decides and encrypts while one helper
thread sends what is ready, in chunks of CHUNK, through
``_sendmany.send_all`` (imap/_sendmany.c), which releases the GIL once per
chunk. A helper that called os.write() in a Python loop would take the GIL
back after every send, and the two threads would hand it to each other
tens of thousands of times: measured slower than no helper at all.

A Batch is filled and finished within one stretch of the event loop (no
await in between), and finish() waits for the helper: nothing else writes
to or reads from these connections meanwhile, and no socket is closed
(transports close theirs in a later loop callback, even on abort()), so a
descriptor in a chunk cannot have been reused for another client's
connection when the helper writes to it. A connection is sent
to directly only when its transport holds no earlier output
(transport.Connection.direct), so nothing is overtaken; what a send did
not take (a full socket buffer) is queued on the transport afterwards, and
a connection whose send failed is aborted, as its transport would have done.

Without the C module, or with one CPU, the batch sends in the event loop's
thread (the same work as transport.write, without the helper).
"""

from __future__ import annotations

import contextlib
import os
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mailbag.imap.transport import Connection

# The first idler's bytes wait for a chunk to fill (0.5-2 ms at 256); the
# helper is woken once per chunk.
CHUNK = 256


def _send_all_py(items: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """_sendmany.send_all in Python: (index, written or -errno) for each
    item not written whole."""
    short: list[tuple[int, int]] = []
    for i, (fd, data) in enumerate(items):
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            n = -(exc.errno or 1)
        if n != len(data):
            short.append((i, n))
    return short


_send_all_c: Callable[[list[tuple[int, bytes]]], list[tuple[int, int]]] | None = None
try:
    from mailbag.imap import _sendmany
    _send_all_c = _sendmany.send_all
except ImportError:          # built without a C compiler: setup.py
    pass


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


@dataclass
class Fanout:
    """One per server process: the helper thread, started on first use."""

    threaded: bool = field(default_factory=lambda: _send_all_c is not None and _cpus() > 1)
    _jobs: queue.SimpleQueue[_Chunk | None] | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def batch(self) -> Batch:
        if self.threaded and self._jobs is None:
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(target=_helper, args=(self._jobs,),
                                            name="mailbag-fanout", daemon=True)
            self._thread.start()
        return Batch(self._jobs if self.threaded else None)

    def close(self) -> None:
        if self._jobs is not None and self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._jobs = self._thread = None


@dataclass(slots=True)
class _Chunk:
    conns: list[Connection] = field(default_factory=list)
    items: list[tuple[int, bytes]] = field(default_factory=list)
    short: list[tuple[int, int]] = field(default_factory=list)
    claim: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event | None = None      # for a chunk handed to the helper


def _helper(jobs: queue.SimpleQueue[_Chunk | None]) -> None:
    while (chunk := jobs.get()) is not None:
        _send(chunk)


def _send(chunk: _Chunk) -> None:
    """Send *chunk* unless the other thread has claimed it first."""
    if not chunk.claim.acquire(blocking=False):
        return
    try:
        chunk.short = (_send_all_c or _send_all_py)(chunk.items)
    except Exception:  # noqa: BLE001 - nothing sent: each connection is aborted
        chunk.short = [(i, -1) for i in range(len(chunk.items))]
    finally:
        if chunk.done is not None:
            chunk.done.set()


class Batch:
    """The writes of one push. add() each, then finish() before any await."""

    __slots__ = ("_jobs", "_chunk", "_sent")

    def __init__(self, jobs: queue.SimpleQueue[_Chunk | None] | None) -> None:
        self._jobs = jobs
        self._chunk = _Chunk()
        self._sent: list[_Chunk] = []        # handed to the helper

    def add(self, conn: Connection, data: bytes) -> None:
        try:
            direct = conn.direct(data)
        except ssl.SSLError:
            conn.abort()
            return
        if direct is None:
            conn.write(data)        # earlier output queued, COMPRESS, closing: the usual way
            return
        chunk = self._chunk
        chunk.conns.append(conn)
        chunk.items.append(direct)
        if len(chunk.items) >= CHUNK and self._jobs is not None:
            chunk.done = threading.Event()
            self._jobs.put(chunk)
            self._sent.append(chunk)
            self._chunk = _Chunk()

    def finish(self) -> None:
        """Send what is left, wait for the helper, settle short sends."""
        chunks, self._sent = self._sent, []
        if self._chunk.items:
            chunks.append(self._chunk)
            self._chunk = _Chunk()
        # Those the helper has not reached yet are sent from here; it skips
        # them (_send's claim).
        for chunk in chunks:
            _send(chunk)
        for chunk in chunks:
            if chunk.done is not None:
                chunk.done.wait()
            for i, n in chunk.short:
                conn = chunk.conns[i]
                if n < 0:
                    with contextlib.suppress(Exception):
                        conn.abort()
                else:
                    conn.write_sealed(chunk.items[i][1][n:])
