"""The shared in-memory mailbox index (store/index.py) against a real store."""

from __future__ import annotations

import asyncio

from conftest import make_message
from mailbag.store.api import Account, AppendItem, MailboxInfo, Store
from mailbag.store.index import IndexCache


async def _info(store: Store, box: MailboxInfo) -> MailboxInfo:
    got = await store.get_mailbox(box.account_id, box.name)
    assert got is not None
    return got


async def _settle() -> None:
    # The change feed is delivered with call_soon_threadsafe from the writer.
    for _ in range(5):
        await asyncio.sleep(0)


async def test_index_follows_appends_flags_and_expunges(store: Store, inbox: MailboxInfo) -> None:
    cache = IndexCache(store)
    await store.append(inbox.id, [AppendItem(make_message()) for _ in range(3)])
    index = await cache.open(await _info(store, inbox))
    assert index.uids == [1, 2, 3]
    assert index.flags == [frozenset()] * 3

    await store.store_flags(inbox.id, [2], "add", frozenset({"\\Seen", "$Work"}))
    await store.append(inbox.id, [AppendItem(make_message(), flags=frozenset({"\\Flagged"}))])
    await store.store_flags(inbox.id, [1, 3], "add", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)
    await _settle()
    await cache.refresh(index)
    assert index.uids == [2, 4]
    assert index.flags == [frozenset({"\\Seen", "$Work"}), frozenset({"\\Flagged"})]
    assert "$Work" in index.keywords
    assert index.modseq == (await _info(store, inbox)).highestmodseq
    # Applying the same changes again changes nothing (the load may overlap them).
    index.apply(await store.changes_since(inbox.id, 0))
    assert index.uids == [2, 4]
    cache.release(index)
    await cache.close()


async def test_second_open_shares_the_index(store: Store, inbox: MailboxInfo) -> None:
    cache = IndexCache(store)
    await store.append(inbox.id, [AppendItem(make_message())])
    info = await _info(store, inbox)
    a, b = await asyncio.gather(cache.open(info), cache.open(info))
    assert a is b and a.uids == [1] and a.users == 2
    cache.release(a)
    cache.release(b)
    await cache.close()


async def test_recent_claims_are_written_back(store: Store, inbox: MailboxInfo) -> None:
    cache = IndexCache(store)
    await store.append(inbox.id, [AppendItem(make_message()) for _ in range(2)])
    index = await cache.open(await _info(store, inbox))
    assert index.recent_count() == 2
    assert index.claim_recent() == 1
    assert index.claim_recent() == 3 and index.recent_count() == 0
    cache.release(index)
    await cache.close()
    info = await _info(store, inbox)
    assert info.first_recent == 3 and await store.count_from(inbox.id, 3) == 0


async def test_recreated_mailbox_gets_a_fresh_index(store: Store, account: Account) -> None:
    cache = IndexCache(store)
    await store.create_mailbox(account.id, "p/kid")
    parent = await store.get_mailbox(account.id, "p")
    assert parent is not None
    await store.append(parent.id, [AppendItem(make_message())])
    old = await cache.open(await _info(store, parent))
    old.claim_recent()
    cache.release(old)
    await store.delete_mailbox(account.id, "p")       # leaves a placeholder, same id
    again = await store.create_mailbox(account.id, "p")
    assert again.id == parent.id and again.uidvalidity != parent.uidvalidity
    assert cache.peek(again) is None
    new = await cache.open(again)
    assert new is not old and new.uids == []
    cache.release(new)
    await cache.close()
    # The old index's claim must not land on the new mailbox.
    assert (await _info(store, again)).first_recent == 1
