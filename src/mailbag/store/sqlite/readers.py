"""Read-only SQLite connections on a small thread pool.

In WAL mode readers never wait for the writer, so reads run concurrently with
the writer thread and with each other and never block the event loop. Each
worker thread owns one connection; every read function runs inside one read
transaction so it sees a single consistent snapshot.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mailbag.store.sqlite.schema import configure

T = TypeVar("T")


class ReaderPool:
    def __init__(self, db_path: Path, size: int = 4) -> None:
        self._db_path = db_path
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="mailbag-sqlite-read")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db_path, isolation_level=None, check_same_thread=False)
            configure(conn)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    async def run_plain(self, fn: Callable[[], T]) -> T:
        """Run blocking work that needs no connection (blob reads) on the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
