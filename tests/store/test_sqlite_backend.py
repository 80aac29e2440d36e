"""SQLite-specific behaviour: group commit, blob dedup and removal, crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import make_message
from mailbag.store.api import INBOX, AppendItem, NotFound
from mailbag.store.sqlite import SqliteStore
from mailbag.store.sqlite.schema import SCHEMA_VERSION
from mailbag.store.sqlite.store import INLINE_MAX


async def test_group_commit_batches(sqlite_store: SqliteStore) -> None:
    acc = await sqlite_store.create_account("a", "h")
    box = await sqlite_store.get_mailbox(acc.id, INBOX)
    assert box is not None
    before = sqlite_store.transactions
    n = 64
    await asyncio.gather(*(sqlite_store.append(box.id, [AppendItem(make_message())]) for _ in range(n)))
    assert sqlite_store.transactions - before < n


def _message_rows(s: SqliteStore) -> list[tuple[str, bool]]:
    with sqlite3.connect(s.db_path) as conn:
        return [(r[0], r[1] is not None)
                for r in conn.execute("SELECT blob_id, data FROM messages")]


@pytest.mark.parametrize("big", [False, True], ids=["inline", "file"])
async def test_blob_dedup_and_removal(sqlite_store: SqliteStore, big: bool) -> None:
    s = sqlite_store
    acc = await s.create_account("a", "h")
    box = await s.get_mailbox(acc.id, INBOX)
    other = await s.create_mailbox(acc.id, "Other")
    assert box is not None
    # Random bytes do not compress: over INLINE_MAX they must go to a file.
    body = os.urandom(INLINE_MAX).hex() if big else "same body"
    raw = make_message("same", body)
    await s.append(box.id, [AppendItem(raw)])
    await s.append(box.id, [AppendItem(raw)])
    await s.copy(box.id, [1, 2], other.id)
    rows = _message_rows(s)
    assert len(rows) == 1                       # one copy for four mailbox entries
    [(blob_id, inline)] = rows
    assert inline is not big
    assert len(list(s.blobs.ids())) == (1 if big else 0)
    assert await s.read_blob(blob_id) == raw
    await s.store_flags(box.id, [1, 2], "add", frozenset({"\\Deleted"}))
    await s.expunge(box.id)
    assert await s.read_blob(blob_id) == raw
    await s.store_flags(other.id, [1, 2], "add", frozenset({"\\Deleted"}))
    await s.expunge(other.id)
    assert _message_rows(s) == []
    assert not s.blobs.exists(blob_id)
    with pytest.raises(NotFound):
        await s.read_blob(blob_id)
    # An orphan file (as a crash would leave) goes with gc().
    s.blobs.put("ab" * 32, b"orphan")
    assert await s.gc() == 1


async def test_reopen_and_schema(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path) as s:
        acc = await s.create_account("a", "h")
        box = await s.get_mailbox(acc.id, INBOX)
        assert box is not None
        await s.append(box.id, [AppendItem(make_message())])
    async with SqliteStore(tmp_path) as s:
        box2 = await s.get_mailbox(acc.id, INBOX)
        assert box2 is not None and box2.messages == 1 and box2.uidnext == 2
    conn = sqlite3.connect(tmp_path / "mailbag.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {tests!r})
    from mime_fallback import install
    install()
    from conftest import make_message
    from pathlib import Path
    from mailbag.store.api import INBOX, AppendItem, NotFound
    from mailbag.store.sqlite import SqliteStore

    async def main():
        s = SqliteStore(Path({data!r}))
        await s.open()
        acc = await s.create_account("crash", "h")
        box = await s.get_mailbox(acc.id, INBOX)
        async def one():
            r = await s.append(box.id, [AppendItem(make_message())])
            print(r.uids[0], flush=True)
        while True:
            await asyncio.gather(*(one() for _ in range(8)))

    asyncio.run(main())
    """
)


async def test_kill_9_loses_no_acknowledged_append(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = _CHILD.format(tests=str(Path(__file__).parent), data=str(data))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    acked: list[int] = []
    while len(acked) < 60:
        line = proc.stdout.readline()
        assert line, "child died early"
        acked.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked += [int(x) for x in proc.stdout.read().split()]
    conn = sqlite3.connect(data / "mailbag.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    async with SqliteStore(data) as s:
        acc = await s.get_account("crash")
        assert acc is not None
        box = await s.get_mailbox(acc.id, INBOX)
        assert box is not None
        have = {m.uid for m in await s.message_list(box.id)}
        assert set(acked) <= have
        assert box.messages == len(have)
        for rec in await s.fetch_records(box.id, sorted(acked)):
            assert (await s.read_blob(rec.blob_id)).startswith(b"From:")
