"""Commits made by another process reach this process's change feed
(SqliteStore.watch_mailbox: PRAGMA data_version polling)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

from mailbag.store.api import INBOX
from mailbag.store.sqlite import SqliteStore

APPEND_FROM_ANOTHER_PROCESS = textwrap.dedent("""
    import asyncio, sys
    from mailbag.store.api import AppendItem, INBOX
    from mailbag.store.sqlite import SqliteStore

    async def main():
        async with SqliteStore(sys.argv[1]) as s:
            acc = await s.get_account("alice")
            box = await s.get_mailbox(acc.id, INBOX)
            await s.append(box.id, [AppendItem(b"Subject: from outside\\r\\n\\r\\nhi\\r\\n")])

    asyncio.run(main())
""")


async def test_other_process_commit_is_announced(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path) as store:
        acc = await store.create_account("alice", "h")
        inbox = await store.get_mailbox(acc.id, INBOX)
        assert inbox is not None
        seen: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        store.add_listener(lambda m, s: seen.put_nowait((m, s)))
        store.watch_mailbox(inbox.id, inbox.highestmodseq)

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPEND_FROM_ANOTHER_PROCESS, str(tmp_path))
        assert await proc.wait() == 0
        mailbox_id, modseq = await asyncio.wait_for(seen.get(), 30)
        assert mailbox_id == inbox.id and modseq > inbox.highestmodseq
        assert [m.uid for m in await store.message_list(inbox.id)] == [1]

        # Unwatched mailboxes are not announced.
        store.unwatch_mailbox(inbox.id)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPEND_FROM_ANOTHER_PROCESS, str(tmp_path))
        assert await proc.wait() == 0
        await asyncio.sleep(1)
        assert seen.empty()
