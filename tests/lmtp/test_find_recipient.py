"""Store.find_recipient (one look-up per RCPT) on the real SQLite store, and
the Resolver policy on top of it (lmtp/addresses.py): accounts before
aliases, plus-addressing into existing folders, and every change visible at
once, also when another process (here: another store on the same files)
made it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from mailbag.config import LmtpConfig
from mailbag.lmtp.addresses import Resolver, Unknown
from mailbag.store.api import AppendItem
from mailbag.store.sqlite import SqliteStore


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path, readers=1, ingest_workers=1)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_accounts_win_over_aliases_and_candidates_keep_their_order(store):
    alice = await store.create_account("alice", "x")
    bob = await store.create_account("bob", "x")
    await store.add_alias("alice@example.org", bob.id)
    # Within a candidate, an account of any of the names beats an alias.
    m = await store.find_recipient([(["alice@example.org", "alice"], [])])
    assert m is not None and (m.candidate, m.account.id) == (0, alice.id)
    assert m.mailbox is not None and m.mailbox.name == "INBOX" and m.quota_used is None
    # Only an alias: it is followed; the first candidate that hits wins.
    m = await store.find_recipient([(["nobody"], []), (["ALICE@example.org"], [])])
    assert m is not None and (m.candidate, m.account.id) == (1, bob.id)
    m = await store.find_recipient([(["sales@example.org", "sales"], [])])
    assert m is None


async def test_folders_in_order_then_inbox_and_quota_use(store):
    alice = await store.create_account("alice", "x")
    await store.create_mailbox(alice.id, "lists")
    await store.create_mailbox(alice.id, "a/b")
    await store.delete_mailbox(alice.id, "a")      # "a" stays as a \Noselect parent
    m = await store.find_recipient([(["alice"], ["nosuch", "lists"])])
    assert m is not None and m.mailbox is not None and m.mailbox.name == "lists"
    m = await store.find_recipient([(["alice"], ["a"])])
    assert m is not None and m.mailbox is not None and m.mailbox.name == "INBOX"
    await store.set_quota(alice.id, 10_000)
    m = await store.find_recipient([(["alice"], [])])
    assert m is not None and m.quota_used == 0


async def test_changes_from_another_process_count_at_once(store, tmp_path):
    alice = await store.create_account("alice", "x")
    resolver = Resolver(store, LmtpConfig())
    other = SqliteStore(tmp_path, readers=1, ingest_workers=1)
    await other.open()
    try:
        await other.add_alias("sales@example.org", alice.id)
        rcpt = await resolver.resolve("sales@example.org", "sales", "example.org")
        assert rcpt.account.id == alice.id and rcpt.mailbox == "INBOX"
        await other.create_mailbox(alice.id, "Lists")
        rcpt = await resolver.resolve("alice+Lists@example.org", "alice+Lists", "example.org")
        assert rcpt.mailbox == "Lists"
        await other.delete_alias("sales@example.org")
        with pytest.raises(Unknown) as exc:
            await resolver.resolve("sales@example.org", "sales", "example.org")
        assert exc.value.status == "5.1.1"
        await other.set_disabled(alice.id, True)
        with pytest.raises(Unknown) as exc:
            await resolver.resolve("alice@example.org", "alice", "example.org")
        assert exc.value.status == "5.2.1"
    finally:
        await other.close()


async def test_resolver_policy(store):
    await store.create_account("alice", "x")
    await store.create_account("a+b", "x")
    await store.create_account("carol@example.org", "x")
    resolver = Resolver(store, LmtpConfig(local_domains=("example.org",)))
    with pytest.raises(Unknown) as exc:
        await resolver.resolve("alice@elsewhere.test", "alice", "elsewhere.test")
    assert exc.value.status == "5.1.2"
    # An account named like the whole local part beats plus-addressing.
    assert (await resolver.resolve("a+b@example.org", "a+b", "example.org")).account.name == "a+b"
    # The account named with the domain beats the bare local part.
    rcpt = await resolver.resolve("Carol@Example.org", "Carol", "Example.org")
    assert rcpt.account.name == "carol@example.org"
    # No such folder: INBOX, never created.
    rcpt = await resolver.resolve("alice+new@example.org", "alice+new", "example.org")
    assert rcpt.mailbox == "INBOX"
    assert await store.get_mailbox(rcpt.account.id, "new") is None


async def test_kept_answers_follow_every_change(store, tmp_path):
    """find_recipient keeps answers while the directory serial stands still;
    each kind of change, made by another process, must still count at once."""
    alice = await store.create_account("alice", "x")
    resolver = Resolver(store, LmtpConfig())
    plus = ("alice+Lists@example.org", "alice+Lists", "example.org")
    assert (await resolver.resolve(*plus)).mailbox == "INBOX"
    assert (await resolver.resolve(*plus)).mailbox == "INBOX"      # kept
    assert store._recipients                                         # (it was)
    other = SqliteStore(tmp_path, readers=1, ingest_workers=1)
    await other.open()
    try:
        await other.create_mailbox(alice.id, "Lists")
        assert (await resolver.resolve(*plus)).mailbox == "Lists"
        await other.rename_mailbox(alice.id, "Lists", "Old-lists")
        assert (await resolver.resolve(*plus)).mailbox == "INBOX"
        await other.set_disabled(alice.id, True)
        with pytest.raises(Unknown):
            await resolver.resolve(*plus)
        await other.set_disabled(alice.id, False)
        # With a quota the usage is read fresh every time, never kept.
        await other.set_quota(alice.id, 1_000_000)
        assert (await resolver.resolve(*plus)).quota_used == 0
        inbox = await other.get_mailbox(alice.id, "INBOX")
        assert inbox is not None
        await other.append(inbox.id, [AppendItem(b"Subject: x\r\n\r\nhello\r\n", frozenset())])
        used = (await resolver.resolve(*plus)).quota_used
        assert used is not None and used > 0
        await other.delete_account(alice.id)
        with pytest.raises(Unknown):
            await resolver.resolve(*plus)
    finally:
        await other.close()
