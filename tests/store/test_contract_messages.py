"""Store contract: append, flags, copy/move, expunge, changes, search, feed."""

from __future__ import annotations

import asyncio

from conftest import make_message
from mailbag.store.api import INBOX, Account, AppendItem, MailboxInfo, Store


async def test_append_and_fetch(store: Store, inbox: MailboxInfo) -> None:
    raw = make_message(body="needle in a haystack")
    res = await store.append(inbox.id, [AppendItem(raw, frozenset({"\\seen", "\\Recent", "Work"}))])
    assert res.uids == (1,) and res.uidvalidity == inbox.uidvalidity
    [rec] = await store.fetch_records(inbox.id, [1, 99])
    assert rec.flags == frozenset({"\\Seen", "Work"}) and rec.size == len(raw)
    assert rec.modseq == res.highestmodseq and rec.internaldate.tzinfo is not None
    assert await store.read_blob(rec.blob_id) == raw
    box = await store.get_mailbox(inbox.account_id, INBOX)
    assert box is not None and (box.messages, box.unseen, box.size) == (1, 0, len(raw))
    assert await store.mailbox_keywords(inbox.id) == ["Work"]
    assert await store.search_text(inbox.id, "BODY", "NEEDLE") == {1}
    assert await store.search_text(inbox.id, "TEXT", "alice@example") == {1}
    assert await store.search_text(inbox.id, "BODY", "alice@example") == set()


async def test_concurrent_appends_distinct_increasing(store: Store, inbox: MailboxInfo) -> None:
    results = await asyncio.gather(
        *(store.append(inbox.id, [AppendItem(make_message())]) for _ in range(40))
    )
    uids = sorted(u for r in results for u in r.uids)
    assert uids == list(range(1, 41))
    assert [m.uid for m in await store.message_list(inbox.id)] == uids


async def test_store_flags_and_changes(store: Store, inbox: MailboxInfo) -> None:
    res = await store.append(inbox.id, [AppendItem(make_message()) for _ in range(3)])
    base = res.highestmodseq
    r = await store.store_flags(inbox.id, [1, 2, 3], "add", frozenset({"\\Seen"}))
    assert [m.uid for m in r.changed] == [1, 2, 3] and r.unchanged_uids == ()
    r = await store.store_flags(inbox.id, [1, 2], "add", frozenset({"\\SEEN"}))
    assert r.changed == () and r.unchanged_uids == (1, 2)
    ch = await store.changes_since(inbox.id, base)
    assert [m.uid for m in ch.changed] == [1, 2, 3]
    mark = ch.highestmodseq
    r = await store.store_flags(inbox.id, [2], "remove", frozenset({"\\seen"}))
    assert r.changed[0].flags == frozenset()
    ch = await store.changes_since(inbox.id, mark)
    assert [m.uid for m in ch.changed] == [2]
    # UNCHANGEDSINCE: uid 2 was modified after ``mark``.
    r = await store.store_flags(inbox.id, [1, 2], "replace", frozenset({"\\Flagged"}), mark)
    assert r.modified_uids == (2,) and [m.uid for m in r.changed] == [1]
    await store.store_flags(inbox.id, [3], "add", frozenset({"\\Deleted"}))
    mark = (await store.changes_since(inbox.id, 0)).highestmodseq
    assert await store.expunge(inbox.id, [1, 2]) == []
    assert await store.expunge(inbox.id) == [3]
    ch = await store.changes_since(inbox.id, mark)
    assert ch.expunged == (3,) and ch.changed == ()
    box = await store.get_mailbox(inbox.account_id, INBOX)
    assert box is not None and box.messages == 2 and box.deleted == 0 and box.unseen == 2


async def test_copy_and_move(store: Store, account: Account, inbox: MailboxInfo) -> None:
    dst = await store.create_mailbox(account.id, "Dst")
    await store.append(inbox.id, [AppendItem(make_message(), frozenset({"\\Flagged"})) for _ in range(3)])
    cr = await store.copy(inbox.id, [3, 1, 77], dst.id)
    assert cr.source_uids == (1, 3) and cr.dest_uids == (1, 2) and cr.uidvalidity == dst.uidvalidity
    src_recs = await store.fetch_records(inbox.id, [1, 3])
    dst_recs = await store.fetch_records(dst.id, [1, 2])
    assert [r.blob_id for r in src_recs] == [r.blob_id for r in dst_recs]
    assert [r.internaldate for r in src_recs] == [r.internaldate for r in dst_recs]
    assert all(r.flags == frozenset({"\\Flagged"}) for r in dst_recs)
    mark = (await store.changes_since(inbox.id, 0)).highestmodseq
    mr = await store.move(inbox.id, [2], dst.id)
    assert mr.dest_uids == (3,)
    assert [m.uid for m in await store.message_list(inbox.id)] == [1, 3]
    assert (await store.changes_since(inbox.id, mark)).expunged == (2,)


async def test_claim_recent(store: Store, inbox: MailboxInfo) -> None:
    await store.append(inbox.id, [AppendItem(make_message()), AppendItem(make_message())])
    assert await store.claim_recent(inbox.id) == 1
    assert await store.claim_recent(inbox.id) == 3
    await store.append(inbox.id, [AppendItem(make_message())])
    assert await store.claim_recent(inbox.id) == 3


async def test_listener_called_after_commit(store: Store, inbox: MailboxInfo) -> None:
    seen: list[tuple[int, int]] = []
    store.add_listener(lambda m, s: seen.append((m, s)))
    res = await store.append(inbox.id, [AppendItem(make_message())])
    await asyncio.sleep(0.01)
    assert (inbox.id, res.highestmodseq) in seen


async def test_pruned_expunge_history_lists_every_missing_uid(
        store: Store, inbox: MailboxInfo) -> None:
    """After the expunge history is pruned, changes since a modseq older
    than what was forgotten list every UID below UIDNEXT that is gone
    (RFC 7162 lets the server over-report VANISHED); newer modseqs still
    get the exact list, and history younger than the cutoff is kept."""
    import time

    await store.append(inbox.id, [AppendItem(make_message()) for _ in range(6)])
    old = (await store.changes_since(inbox.id, 0)).highestmodseq
    await store.store_flags(inbox.id, [2, 4], "add", frozenset({"\\Deleted"}))
    assert await store.expunge(inbox.id) == [2, 4]
    mid = (await store.changes_since(inbox.id, 0)).highestmodseq
    await store.store_flags(inbox.id, [5], "add", frozenset({"\\Deleted"}))
    assert await store.expunge(inbox.id) == [5]
    # Nothing is older than an hour ago: nothing forgotten.
    assert await store.prune_expunged(int(time.time()) - 3600) == 0
    assert (await store.changes_since(inbox.id, old)).expunged == (2, 4, 5)
    # Everything before "a second from now" is forgotten.
    assert await store.prune_expunged(int(time.time()) + 1) == 3
    await store.append(inbox.id, [AppendItem(make_message())])      # UID 7
    ch = await store.changes_since(inbox.id, old)
    assert ch.expunged == (2, 4, 5) and [m.uid for m in ch.changed] == [7]
    # At or above the highest forgotten modseq the answer stays exact.
    floor = (await store.changes_since(inbox.id, 0)).highestmodseq - 1
    assert (await store.changes_since(inbox.id, floor)).expunged == ()
    assert (await store.changes_since(inbox.id, mid)).expunged == (2, 4, 5)   # over-reports
    await store.store_flags(inbox.id, [7], "add", frozenset({"\\Deleted"}))
    assert await store.expunge(inbox.id) == [7]
    assert (await store.changes_since(inbox.id, floor)).expunged == (7,)
    assert [m.uid for m in await store.message_list(inbox.id)] == [1, 3, 6]
