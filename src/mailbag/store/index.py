"""The in-memory index of open mailboxes: UIDs, flags and modseqs of every
message, shared by all sessions of the process (RFC 9051 §2.3.1 message
attributes, §7.3.1 EXISTS, RFC 3501 §2.3.2 \\Recent).

Without it every SELECT would read the whole message list from the database
and every session would keep its own copy of every message's flags. With it,
the list is read once per mailbox and kept current from the change feed: when
the feed announces a higher modseq, the next reader asks the store for
``changes_since`` once, for all sessions. SELECT then costs a list copy.

The index is built on the Store protocol alone, so every backend gets it.
\\Recent claims (which session is the first to see a message) live here, in
memory, and are written back to the store when a mailbox leaves the cache.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailbag.store.api import Changes, MailboxInfo, MessageMeta, NotFound, Store

log = logging.getLogger(__name__)

KEEP_UNUSED = 64   # mailboxes kept after their last session leaves


@dataclass(slots=True, eq=False)
class MailboxIndex:
    mailbox_id: int
    uidvalidity: int
    uids: list[int] = field(default_factory=list)              # ascending
    flags: list[frozenset[str]] = field(default_factory=list)  # parallel to uids
    modseqs: list[int] = field(default_factory=list)           # parallel to uids
    modseq: int = 0          # every change up to this modseq is applied
    target: int = 0          # highest modseq the change feed announced
    keywords: set[str] = field(default_factory=set)
    first_recent: int = 1    # lowest UID not yet claimed as \Recent
    saved_recent: int = 1    # first_recent as the store has it
    users: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Per-mailbox change listeners (the sessions that have it selected): a
    # change costs work in proportion to them, not to all connections.
    watchers: set[Callable[[int, int], None]] = field(default_factory=set)
    # changes_since answers shared by the sessions a change wakes, by the
    # modseq asked from; cleared when the feed announces a newer change.
    shared: dict[int, asyncio.Future[Changes]] = field(default_factory=dict)
    _unseen: tuple[int, int | None] = (-1, None)   # (modseq, position) memo

    def first_unseen(self) -> int | None:
        """Position of the first message without \\Seen (rev1 SELECT's
        [UNSEEN n]); remembered until the next change."""
        if self._unseen[0] != self.modseq:
            pos = next((i for i, f in enumerate(self.flags) if "\\Seen" not in f), None)
            self._unseen = (self.modseq, pos)
        return self._unseen[1]

    def position(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i
        return None

    def apply(self, changes: Changes) -> None:
        """Fold in a changes_since answer. Idempotent: a change already seen
        (the list was read after it committed) changes nothing."""
        if len(changes.expunged) <= 64:
            # A few expunges (the usual case): delete in place, highest first.
            for uid in reversed(changes.expunged):
                i = self.position(uid)
                if i is not None:
                    del self.uids[i], self.flags[i], self.modseqs[i]
        else:
            gone = set(changes.expunged)
            keep = [i for i, u in enumerate(self.uids) if u not in gone]
            if len(keep) != len(self.uids):
                self.uids = [self.uids[i] for i in keep]
                self.flags = [self.flags[i] for i in keep]
                self.modseqs = [self.modseqs[i] for i in keep]
        interned: dict[frozenset[str], frozenset[str]] = {}
        for m in changes.changed:
            flags = interned.setdefault(m.flags, m.flags)
            last = self.uids[-1] if self.uids else 0
            if m.uid > last:
                self.uids.append(m.uid)
                self.flags.append(flags)
                self.modseqs.append(m.modseq)
            else:
                i = bisect_left(self.uids, m.uid)
                if i < len(self.uids) and self.uids[i] == m.uid:
                    self.flags[i] = flags
                    self.modseqs[i] = m.modseq
                else:  # cannot happen with monotonic UIDs; stay correct anyway
                    self.uids.insert(i, m.uid)
                    self.flags.insert(i, flags)
                    self.modseqs.insert(i, m.modseq)
            self.keywords.update(f for f in flags if not f.startswith("\\"))
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.target = max(self.target, self.modseq)

    def apply_own(self, changed: Sequence[MessageMeta]) -> None:
        """Fold in a flag change this process just committed, when it is the
        very next modseq (each write bumps the modseq by one); otherwise the
        next refresh() reads it from the store."""
        if changed and changed[0].modseq == self.modseq + 1:
            self.apply(Changes(highestmodseq=changed[0].modseq, uidnext=0,
                               changed=tuple(changed), expunged=()))

    def claim_recent(self) -> int:
        """Take every message not yet seen by a session as \\Recent for the
        caller; return the first UID that is recent for it."""
        first = self.first_recent
        if self.uids:
            self.first_recent = max(first, self.uids[-1] + 1)
        return first

    def recent_count(self) -> int:
        return len(self.uids) - bisect_left(self.uids, self.first_recent)


class IndexCache:
    """Indexes of the mailboxes sessions have open, plus a few recent ones."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._indexes: dict[int, MailboxIndex] = {}
        self._unused: OrderedDict[int, None] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()
        store.add_listener(self._on_change)

    def _on_change(self, mailbox_id: int, modseq: int) -> None:
        index = self._indexes.get(mailbox_id)
        if index is None:
            return
        if modseq > index.target:
            index.target = modseq
        index.shared.clear()      # a new commit: earlier answers are stale
        for watcher in list(index.watchers):
            try:
                watcher(mailbox_id, modseq)
            except Exception:
                log.exception("mailbox watcher failed")

    async def changes_since(self, index: MailboxIndex, since: int) -> Changes:
        """``store.changes_since`` for *index*'s mailbox, asked once for all
        the sessions that want it from the same modseq (one APPEND wakes
        every session idling in the mailbox, all at the same modseq)."""
        fut = index.shared.get(since)
        if fut is not None and fut.done() and (
                fut.cancelled() or fut.exception() is not None
                or fut.result().highestmodseq < index.target):
            fut = None
        if fut is None:
            if len(index.shared) >= 16:
                index.shared.clear()
            fut = asyncio.ensure_future(self.store.changes_since(index.mailbox_id, since))
            index.shared[since] = fut
        # shield: one waiter being cancelled must not cancel the others' query.
        return await asyncio.shield(fut)

    def peek(self, info: MailboxInfo) -> MailboxIndex | None:
        """The cached index of *info*'s mailbox, if any (not refreshed)."""
        index = self._indexes.get(info.id)
        return index if index is not None and index.uidvalidity == info.uidvalidity else None

    async def open(self, info: MailboxInfo) -> MailboxIndex:
        """The current index of *info*'s mailbox, held until :meth:`release`."""
        index = self._indexes.get(info.id)
        if index is not None and index.uidvalidity != info.uidvalidity:
            self._drop(info.id)
            index = None
        if index is None:
            # target above modseq: a concurrent open() waits in refresh() for
            # the load to finish instead of copying an empty list.
            index = MailboxIndex(info.id, info.uidvalidity, modseq=info.highestmodseq,
                                 target=info.highestmodseq + 1, first_recent=info.first_recent,
                                 saved_recent=info.first_recent)
            self._indexes[info.id] = index
            self.store.watch_mailbox(info.id, info.highestmodseq)
            async with index.lock:
                try:
                    await self._load(index)
                except BaseException:
                    self._indexes.pop(info.id, None)
                    self.store.unwatch_mailbox(info.id)
                    raise
        index.users += 1
        self._unused.pop(info.id, None)
        try:
            await self.refresh(index)
        except BaseException:
            self.release(index)
            raise
        return index

    async def _load(self, index: MailboxIndex) -> None:
        # The list is read after highestmodseq, so it may already hold some
        # later changes; refresh() re-reads from the older modseq and apply()
        # is idempotent, so nothing is missed or doubled.
        metas = await self.store.message_list(index.mailbox_id)
        interned: dict[frozenset[str], frozenset[str]] = {}
        index.uids = [m.uid for m in metas]
        index.flags = [interned.setdefault(m.flags, m.flags) for m in metas]
        index.modseqs = [m.modseq for m in metas]
        index.keywords = set(await self.store.mailbox_keywords(index.mailbox_id))

    async def refresh(self, index: MailboxIndex, upto: int | None = None) -> None:
        """Bring *index* up to modseq *upto* (default: the last change the
        feed announced). One store query serves every waiting session."""
        needed = index.target if upto is None else upto
        if index.modseq >= needed:
            return
        async with index.lock:
            if index.modseq >= needed:
                return
            changes = await self.store.changes_since(index.mailbox_id, index.modseq)
            index.apply(changes)

    def release(self, index: MailboxIndex) -> None:
        index.users -= 1
        if index.users > 0 or self._indexes.get(index.mailbox_id) is not index:
            return
        if index.first_recent > index.saved_recent:
            self._save_recent(index)
        self._unused[index.mailbox_id] = None
        while len(self._unused) > KEEP_UNUSED:
            old, _ = self._unused.popitem(last=False)
            self._drop(old)

    def _drop(self, mailbox_id: int) -> None:
        index = self._indexes.pop(mailbox_id, None)
        self._unused.pop(mailbox_id, None)
        self.store.unwatch_mailbox(mailbox_id)
        if index is not None and index.first_recent > index.saved_recent:
            self._save_recent(index)

    def _save_recent(self, index: MailboxIndex) -> None:
        index.saved_recent = index.first_recent
        task = asyncio.get_running_loop().create_task(self._write_recent(index))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write_recent(self, index: MailboxIndex) -> None:
        try:
            await self.store.save_recent(index.mailbox_id, index.uidvalidity,
                                        index.first_recent)
        except NotFound:
            pass  # the mailbox was deleted meanwhile

    async def close(self) -> None:
        """Write back every \\Recent claim (at shutdown)."""
        for mailbox_id in list(self._indexes):
            self._drop(mailbox_id)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self.store.remove_listener(self._on_change)
