"""The POP3 maildrop: a snapshot of the account's INBOX (RFC 1939 §4, §6, §8).

At login the session takes a snapshot (message numbers 1..N in ascending UID
order) and keeps it for the whole session, as RFC 1939 asks: mail arriving
later shows up in the next session, and messages an IMAP client expunges
meanwhile answer "-ERR ... no longer available".

DELE only marks; RSET unmarks (and forgets pending \\Seen marks). On QUIT in
the TRANSACTION state (the UPDATE state, RFC 1939 §6) the marked messages get
\\Deleted and are expunged through the store, so IMAP sessions that have INBOX
selected hear EXPUNGE through the change feed.

\\Seen: like Dovecot, RETR (not TOP) marks a message as read. The marks are
written when the session ends - at QUIT, or when the connection drops or
times out, because the client did receive those messages.

Locking (RFC 1939 §4 "exclusive-access lock"): one POP3 session per account
per server process; a second gets "-ERR [IN-USE]". IMAP is not locked out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from mailbag.pop3.codec import uidl, wire_size
from mailbag.store.api import INBOX, NotFound, Store

# Sizes in CRLF form need the message bytes; blobs are immutable and named by
# their hash, so a computed size is cached for good (bounded, oldest first).
SIZE_CACHE_ENTRIES: Final = 200_000
# Blob reads run on the store's reader pool; this many at once per login.
READ_CONCURRENCY: Final = 8
RECORD_BATCH: Final = 500
SEEN: Final = "\\Seen"
DELETED: Final = "\\Deleted"


class SizeCache:
    def __init__(self, limit: int = SIZE_CACHE_ENTRIES) -> None:
        self.limit = limit
        self._sizes: OrderedDict[str, int] = OrderedDict()

    def get(self, blob_id: str) -> int | None:
        return self._sizes.get(blob_id)

    def put(self, blob_id: str, size: int) -> None:
        self._sizes[blob_id] = size
        if len(self._sizes) > self.limit:
            self._sizes.popitem(last=False)


class MaildropLocks:
    """Accounts with a POP3 session in TRANSACTION state (in-process)."""

    def __init__(self) -> None:
        self._held: set[int] = set()

    def acquire(self, account_id: int) -> bool:
        if account_id in self._held:
            return False
        self._held.add(account_id)
        return True

    def release(self, account_id: int) -> None:
        self._held.discard(account_id)


@dataclass(slots=True)
class Pop3Message:
    number: int                   # 1-based message-number of this session
    uid: int
    blob_id: str
    size: int                     # octets in to_wire() form
    unique_id: str
    deleted: bool = False
    retrieved: bool = False       # RETR'd since the last RSET: gets \Seen


@dataclass(slots=True)
class UpdateResult:
    expunged: int
    seen: int


class MessageGone(Exception):
    """The message was expunged (by IMAP) after the snapshot was taken."""


@dataclass(slots=True)
class Maildrop:
    store: Store
    mailbox_id: int
    uidvalidity: int
    messages: list[Pop3Message] = field(default_factory=list)

    @classmethod
    async def open(cls, store: Store, account_id: int, sizes: SizeCache) -> Maildrop:
        info = await store.get_mailbox(account_id, INBOX)
        if info is None:
            raise NotFound("the account has no INBOX")
        uids = [m.uid for m in await store.message_list(info.id)]
        sem = asyncio.Semaphore(READ_CONCURRENCY)

        async def size_of(blob_id: str, stored_size: int) -> int:
            cached = sizes.get(blob_id)
            if cached is not None:
                return cached
            async with sem:
                try:
                    raw = await store.read_blob(blob_id)
                except NotFound:
                    # Expunged (and its blob dropped) since message_list; RETR
                    # will say so. The stored size is as good as any.
                    return stored_size
            size = wire_size(raw)
            sizes.put(blob_id, size)
            return size

        drop = cls(store, info.id, info.uidvalidity)
        # Records carry the parsed facts too: fetch them in batches so a big
        # INBOX does not sit in memory all at once.
        for start in range(0, len(uids), RECORD_BATCH):
            records = await store.fetch_records(info.id, uids[start:start + RECORD_BATCH])
            sized = await asyncio.gather(*(size_of(r.blob_id, r.size) for r in records))
            for rec, size in zip(records, sized, strict=True):
                drop.messages.append(Pop3Message(
                    len(drop.messages) + 1, rec.uid, rec.blob_id, size,
                    uidl(info.uidvalidity, rec.uid),
                ))
        return drop

    # ------------------------------------------------------------- queries
    def get(self, number: int) -> Pop3Message | None:
        """The message numbered ``number``, None if out of range."""
        if 1 <= number <= len(self.messages):
            return self.messages[number - 1]
        return None

    def live(self) -> list[Pop3Message]:
        return [m for m in self.messages if not m.deleted]

    def stat(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(m.size for m in live)

    async def read(self, msg: Pop3Message) -> bytes:
        # The blob may outlive the message (another mailbox holds the same
        # bytes), so ask whether the UID is still in INBOX: a message an IMAP
        # client expunged is not served.
        if not await self.store.fetch_records(self.mailbox_id, [msg.uid]):
            raise MessageGone
        try:
            return await self.store.read_blob(msg.blob_id)
        except NotFound:
            raise MessageGone from None

    # ------------------------------------------------------------- changes
    def reset(self) -> None:
        for m in self.messages:
            m.deleted = False
            m.retrieved = False

    async def update(self) -> UpdateResult:
        """The UPDATE state: write \\Seen marks, then expunge DELE'd messages.

        Only the UIDs this session marked are expunged, so messages an IMAP
        client flagged \\Deleted stay until that client expunges them.
        """
        seen = await self.write_seen()
        doomed = [m.uid for m in self.messages if m.deleted]
        expunged: list[int] = []
        if doomed:
            await self.store.store_flags(self.mailbox_id, doomed, "add", frozenset({DELETED}))
            expunged = await self.store.expunge(self.mailbox_id, doomed)
        return UpdateResult(len(expunged), seen)

    async def write_seen(self) -> int:
        """Add \\Seen to the messages RETR'd (and not DELE'd); the marks are
        consumed so a second call writes nothing."""
        uids = [m.uid for m in self.messages if m.retrieved and not m.deleted]
        for m in self.messages:
            m.retrieved = False
        if not uids:
            return 0
        result = await self.store.store_flags(self.mailbox_id, uids, "add", frozenset({SEEN}))
        return len(result.changed)
