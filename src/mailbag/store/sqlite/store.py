"""``SqliteStore``: the embedded storage backend (store.api.Store on SQLite).

Threads: one writer thread owns the only write connection and batches queued
jobs into group commits (writer.py); a small pool of reader threads with their
own connections serves reads (readers.py); a small ingest pool parses new
messages and writes their blobs before the transaction that references them
(ingest.py, blobs.py). The event loop only awaits futures.

Durability: WAL with synchronous=FULL, blobs fsynced before the referencing
commit; a call returns only after its transaction committed.

Blob garbage: when a job removes the last mailbox row of a message, the
message row goes in the same transaction and the blob file is deleted by the
writer right after the commit. Files orphaned by a crash (between a blob write
and its commit, or between a commit and the unlink) are removed by ``gc()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from mailbag.store.api import (
    Account,
    AccountCredentials,
    Alias,
    AppendItem,
    AppendResult,
    AppPassword,
    Changes,
    CopyResult,
    FlagMode,
    MailboxInfo,
    MessageMeta,
    MessageRecord,
    NotFound,
    RecipientMatch,
    StoreError,
    StoreResult,
    TextWhere,
    ThreadMessage,
)
from mailbag.store.blobs import BlobStore, is_blob_id
from mailbag.store.ingest import PreparedMessage, prepare_and_store
from mailbag.store.notify import ChangeFeed
from mailbag.store.sqlite import (
    alias_ops,
    credential_ops,
    delivery_ops,
    mailbox_ops,
    message_ops,
    queries,
)
from mailbag.store.sqlite.ingest_procs import IngestProcesses
from mailbag.store.sqlite.readers import ReaderPool
from mailbag.store.sqlite.schema import configure
from mailbag.store.sqlite.writer import Txn, Writer

T = TypeVar("T")
log = logging.getLogger("mailbag.store")

DB_NAME = "mailbag.sqlite3"
# Messages whose compressed form is at most this big live in their database
# row; bigger ones (attachments) in blob files, so the database stays compact.
INLINE_MAX = 128 * 1024
# FETCHes of at most this many messages read their records on the event loop.
QUICK_RECORDS = 64
# Recipient look-ups kept (find_recipient); the cache starts over when full.
RECIPIENT_CACHE = 4096
# How often the database is checked for commits made by other processes
# (`mailbag deliver` or `mailbag import` run beside the server).
WATCH_INTERVAL = 0.25
# _name_sigs value after this process changed the names itself: the next
# signature the watcher reads is the new baseline, announced already.
_OWN = -1


class SqliteStore:
    def __init__(self, data_dir: Path, *, readers: int = 4, ingest_workers: int | None = None,
                 ingest_processes: int = 0, fts_batch: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_NAME
        self.blobs = BlobStore(self.data_dir / "blobs")
        self._feed = ChangeFeed()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader_count = readers
        self._ingest_workers = ingest_workers or min(4, os.cpu_count() or 1)
        self._writer: Writer | None = None
        self._readers: ReaderPool | None = None
        self._ingest: ThreadPoolExecutor | None = None
        # ingest_processes > 0: parse in that many worker processes, started on
        # the first message (ingest_procs.py says why); the server does this.
        self._procs: IngestProcesses | None = None
        self._proc_count = ingest_processes
        # fts_batch > 0: the search index is written for that many messages
        # at a time, not in each commit (writer.py, "Deferred indexing").
        self._fts_batch = fts_batch
        # Mailboxes someone in this process follows -> highest modseq known.
        self._watched: dict[int, int] = {}
        # How many followers each watched mailbox has (the mailbox index and
        # NOTIFY sessions watch the same mailbox independently).
        self._watch_refs: dict[int, int] = {}
        # Accounts whose mailbox names/subscriptions someone follows (NOTIFY)
        # -> followers, and the last signature of those names the watcher saw.
        self._name_refs: dict[int, int] = {}
        self._name_sigs: dict[int, int | None] = {}
        self._watcher: asyncio.Task[None] | None = None
        # Read connection of the event loop's own, for tiny look-ups (find_recipient).
        self._quick: sqlite3.Connection | None = None
        # find_recipient answers -> (directory_serial when read, answer)
        self._recipients: dict[object, tuple[int, RecipientMatch | None]] = {}
        self._serial_now: int | None = None    # directory_serial, this loop turn
        self._feed.add(self._note_change)

    # -- lifecycle

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.blobs.root.mkdir(parents=True, exist_ok=True)
        writer = Writer(self.db_path, self.blobs, self._committed, self._fts_batch)
        await asyncio.wrap_future(writer.start())
        self._writer = writer
        self._readers = ReaderPool(self.db_path, self._reader_count)
        self._ingest = ThreadPoolExecutor(
            max_workers=self._ingest_workers, thread_name_prefix="mailbag-ingest"
        )
        if self._proc_count > 0:
            self._procs = IngestProcesses(self.blobs.root, INLINE_MAX, self._proc_count)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._quick is not None:
            self._quick.close()
            self._quick = None
        loop = asyncio.get_running_loop()
        procs, self._procs = self._procs, None
        if procs is not None:
            await procs.close()
        writer, readers, ingest = self._writer, self._readers, self._ingest
        self._writer = self._readers = self._ingest = None
        if ingest is not None:
            await loop.run_in_executor(None, ingest.shutdown)
        if writer is not None:
            await loop.run_in_executor(None, writer.stop)
        if readers is not None:
            await loop.run_in_executor(None, readers.close)

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def transactions(self) -> int:
        """Write transactions committed since open (group commit makes this
        smaller than the number of write calls)."""
        return self._writer.transactions if self._writer else 0

    def _committed(self, touched: dict[int, int]) -> None:
        # Runs on the writer thread right after COMMIT.
        self._feed.publish_threadsafe(self._loop, touched)

    # -- changes made by other processes

    def watch_mailbox(self, mailbox_id: int, modseq: int) -> None:
        """Announce on the change feed commits that other processes make to
        this mailbox (this process's own commits are announced anyway)."""
        self._watched[mailbox_id] = max(self._watched.get(mailbox_id, 0), modseq)
        self._watch_refs[mailbox_id] = self._watch_refs.get(mailbox_id, 0) + 1
        self._start_watcher()

    def unwatch_mailbox(self, mailbox_id: int) -> None:
        refs = self._watch_refs.get(mailbox_id, 0) - 1
        if refs > 0:
            self._watch_refs[mailbox_id] = refs
            return
        self._watch_refs.pop(mailbox_id, None)
        self._watched.pop(mailbox_id, None)

    def _start_watcher(self) -> None:
        if self._watcher is None and self._loop is not None:
            self._watcher = self._loop.create_task(self._watch())

    def watch_names(self, account_id: int) -> None:
        """Also announce (add_names_listener) mailbox name and subscription
        changes other processes commit for this account."""
        self._name_refs[account_id] = self._name_refs.get(account_id, 0) + 1
        # No baseline yet: the first change the watcher sees is announced
        # (followers compare the names themselves, so an extra one is
        # harmless; a missed one is not).
        self._name_sigs.setdefault(account_id, None)
        self._start_watcher()

    def unwatch_names(self, account_id: int) -> None:
        refs = self._name_refs.get(account_id, 0) - 1
        if refs > 0:
            self._name_refs[account_id] = refs
            return
        self._name_refs.pop(account_id, None)
        self._name_sigs.pop(account_id, None)

    def _names_changed(self, account_id: int) -> None:
        # This process's own change: announced now, in the caller's task; the
        # watcher takes the new names as its baseline without announcing again.
        if account_id in self._name_sigs:
            self._name_sigs[account_id] = _OWN
        self._feed.publish_names(account_id)

    def _note_change(self, mailbox_id: int, modseq: int) -> None:
        if mailbox_id in self._watched and modseq > self._watched[mailbox_id]:
            self._watched[mailbox_id] = modseq

    async def _watch(self) -> None:
        # SQLite tells a connection when another connection has committed
        # (PRAGMA data_version; it reads shared memory, no I/O), so polling
        # costs next to nothing until something changes. Only then are the
        # watched mailboxes' modseqs read, with one indexed query.
        conn = sqlite3.connect(self.db_path, check_same_thread=False)
        try:
            conn.execute("PRAGMA query_only = 1")
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while True:
                await asyncio.sleep(WATCH_INTERVAL)
                if not self._watched and not self._name_refs:
                    continue
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version == last:
                    continue
                last = version
                if self._name_refs:
                    self._check_names(conn)
                events: dict[int, int] = {}
                ids = list(self._watched)
                for i in range(0, len(ids), 500):
                    chunk = ids[i:i + 500]
                    marks = ",".join("?" * len(chunk))
                    for mailbox_id, modseq in conn.execute(
                        f"SELECT id, highestmodseq FROM mailboxes WHERE id IN ({marks})", chunk
                    ):
                        if modseq > self._watched.get(mailbox_id, modseq):
                            events[mailbox_id] = modseq
                if events:
                    self._feed.publish(events)   # _note_change records them
        except sqlite3.Error:
            log.exception("change watcher stopped")
        finally:
            conn.close()

    def _check_names(self, conn: sqlite3.Connection) -> None:
        """Announce the followed accounts whose mailbox names or
        subscriptions another process changed: a signature of both per
        account (two indexed queries), compared with the last one."""
        for account_id in list(self._name_refs):
            rows = conn.execute(
                "SELECT id, name, noselect FROM mailboxes WHERE account_id = ? ORDER BY id",
                (account_id,)).fetchall()
            subs = conn.execute(
                "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name",
                (account_id,)).fetchall()
            sig = hash((tuple(rows), tuple(subs)))
            old = self._name_sigs.get(account_id)
            self._name_sigs[account_id] = sig
            if old != sig and old != _OWN:
                self._feed.publish_names(account_id)

    async def _write(self, job: Callable[[Txn], T]) -> T:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return await self._writer.submit_async(job)

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        if self._readers is None:
            raise RuntimeError("the store is not open")
        return await self._readers.run(lambda conn: fn(conn, *args))

    # -- accounts

    async def create_account(self, name: str, password_hash: str) -> Account:
        return await self._write(lambda t: mailbox_ops.create_account(t, name, password_hash))

    async def get_account(self, name: str) -> Account | None:
        return await self._read(queries.get_account, name)

    async def list_accounts(self) -> list[Account]:
        return await self._read(queries.list_accounts)

    async def set_password_hash(self, account_id: int, password_hash: str) -> None:
        await self._write(lambda t: mailbox_ops.set_password_hash(t, account_id, password_hash))

    async def set_quota(self, account_id: int, quota_bytes: int | None) -> None:
        await self._write(lambda t: mailbox_ops.set_quota(t, account_id, quota_bytes))

    async def set_disabled(self, account_id: int, disabled: bool) -> None:
        await self._write(lambda t: mailbox_ops.set_disabled(t, account_id, disabled))

    async def quota_usage(self, account_id: int) -> int:
        """Bytes (sum of RFC822.SIZE) stored in the account's mailboxes."""
        return await self._read(queries.quota_usage, account_id)

    async def delete_account(self, account_id: int) -> None:
        await self._write(lambda t: mailbox_ops.delete_account(t, account_id))

    # -- credentials (credential_ops.py, docs/auth.md)

    async def get_credentials(self, account_id: int) -> AccountCredentials:
        return await self._read(credential_ops.get_credentials, account_id)

    async def set_scram_credentials(self, account_id: int, scram: str | None) -> None:
        await self._write(lambda t: credential_ops.set_scram_credentials(t, account_id, scram))

    async def set_totp_secret(self, account_id: int, secret: str | None) -> None:
        await self._write(lambda t: credential_ops.set_totp_secret(t, account_id, secret))

    async def claim_totp_step(self, account_id: int, step: int) -> bool:
        return await self._write(lambda t: credential_ops.claim_totp_step(t, account_id, step))

    async def set_require_second_factor(self, account_id: int, required: bool) -> None:
        await self._write(
            lambda t: credential_ops.set_require_second_factor(t, account_id, required)
        )

    async def add_app_password(
        self, account_id: int, label: str, selector: str, password_hash: str
    ) -> AppPassword:
        return await self._write(
            lambda t: credential_ops.add_app_password(t, account_id, label, selector, password_hash)
        )

    async def list_app_passwords(
        self, account_id: int, include_revoked: bool = False
    ) -> list[AppPassword]:
        return await self._read(credential_ops.list_app_passwords, account_id, include_revoked)

    async def app_password_candidates(self, account_id: int, selector: str) -> list[AppPassword]:
        return await self._read(credential_ops.app_password_candidates, account_id, selector)

    async def revoke_app_password(self, account_id: int, label: str) -> AppPassword:
        return await self._write(lambda t: credential_ops.revoke_app_password(t, account_id, label))

    async def record_app_password_use(
        self, app_password_id: int, remote_ip: str, new_hash: str | None = None
    ) -> None:
        await self._write(
            lambda t: credential_ops.record_app_password_use(t, app_password_id, remote_ip, new_hash)
        )

    async def revoked_app_passwords(self, ids: Sequence[int]) -> set[int]:
        return await self._read(credential_ops.revoked_app_passwords, list(ids))

    # -- mailboxes

    async def list_mailboxes(self, account_id: int) -> list[MailboxInfo]:
        return await self._read(queries.list_mailboxes, account_id)

    async def get_mailbox(self, account_id: int, name: str) -> MailboxInfo | None:
        return await self._read(queries.get_mailbox, account_id, name)

    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> MailboxInfo:
        info = await self._write(
            lambda t: mailbox_ops.create_mailbox(t, account_id, name, special_use)
        )
        self._names_changed(account_id)
        return info

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        await self._write(lambda t: mailbox_ops.delete_mailbox(t, account_id, name))
        self._names_changed(account_id)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        await self._write(lambda t: mailbox_ops.rename_mailbox(t, account_id, old, new))
        self._names_changed(account_id)

    async def subscriptions(self, account_id: int) -> list[str]:
        return await self._read(queries.subscriptions, account_id)

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        await self._write(lambda t: mailbox_ops.set_subscribed(t, account_id, name, subscribed))
        self._names_changed(account_id)

    async def mailbox_keywords(self, mailbox_id: int) -> list[str]:
        return await self._read(queries.mailbox_keywords, mailbox_id)

    async def count_from(self, mailbox_id: int, first_uid: int) -> int:
        return await self._read(queries.count_from, mailbox_id, first_uid)

    async def deleted_size(self, mailbox_id: int) -> int:
        return await self._read(queries.deleted_size, mailbox_id)

    async def claim_recent(self, mailbox_id: int) -> int:
        return await self._write(lambda t: message_ops.claim_recent(t, mailbox_id))

    async def save_recent(self, mailbox_id: int, uidvalidity: int, first_recent: int) -> None:
        await self._write(
            lambda t: message_ops.save_recent(t, mailbox_id, uidvalidity, first_recent)
        )

    # -- messages

    async def prepare(self, raw: bytes) -> PreparedMessage:
        """Parse ``raw`` and store its blob, off the event loop."""
        if self._ingest is None:
            raise RuntimeError("the store is not open")
        if self._procs is not None:
            return await self._procs.prepare(raw)
        loop = asyncio.get_running_loop()
        # A small message travels to the writer compressed and is committed
        # in its row; a big one is durable as a file before its transaction.
        return await loop.run_in_executor(self._ingest, prepare_and_store, self.blobs,
                                          INLINE_MAX, raw)

    async def append(self, mailbox_id: int, items: Sequence[AppendItem]) -> AppendResult:
        items = list(items)
        prepared = list(await asyncio.gather(*(self.prepare(item.data) for item in items)))
        return await self._write(lambda t: message_ops.append(t, mailbox_id, items, prepared))

    async def deliver(
        self, mailbox_ids: Sequence[int], item: AppendItem
    ) -> list[AppendResult | StoreError]:
        # Parsed and written as a blob once, whatever the number of mailboxes.
        boxes = list(mailbox_ids)
        prepared = await self.prepare(item.data)
        try:
            return await self._write(lambda t: delivery_ops.deliver(t, boxes, item, prepared))
        except StoreError as exc:
            if len(boxes) != 1:
                raise
            return [exc]     # one mailbox: delivery_ops lets its error through

    async def message_list(self, mailbox_id: int) -> list[MessageMeta]:
        return await self._read(queries.message_list, mailbox_id)

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        return await self._read(queries.changes_since, mailbox_id, modseq)

    async def prune_expunged(self, before: int) -> int:
        return await self._write(lambda t: message_ops.prune_expunged(t, before))

    async def fetch_records(
        self, mailbox_id: int, uids: Sequence[int], facts: bool = True
    ) -> list[MessageRecord]:
        if len(uids) <= QUICK_RECORDS:
            # A client opening a folder fetches a screenful of envelopes:
            # one indexed query, cheaper here than a thread hand-off.
            return queries.fetch_records(self._quick_conn(), mailbox_id, list(uids), facts)
        return await self._read(queries.fetch_records, mailbox_id, list(uids), facts)

    async def sort_uids(
        self, mailbox_id: int, criteria: Sequence[tuple[str, bool]], uids: Sequence[int]
    ) -> list[int]:
        return await self._read(queries.sort_uids, mailbox_id, list(criteria), list(uids))

    async def thread_facts(self, mailbox_id: int, uids: Sequence[int]) -> list[ThreadMessage]:
        return await self._read(queries.thread_facts, mailbox_id, list(uids))

    async def expunge_mark(self, mailbox_id: int) -> int:
        # Two indexed look-ups: cheaper here than a thread hand-off.
        return queries.expunge_mark(self._quick_conn(), mailbox_id)

    async def read_blob(self, blob_id: str) -> bytes:
        if not is_blob_id(blob_id):
            raise NotFound(f"no blob {blob_id!r}")
        if self._readers is None:
            raise RuntimeError("the store is not open")

        def read(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT data FROM messages WHERE blob_id = ?",
                               (blob_id,)).fetchone()
            if row is not None and row[0] is not None:
                return self.blobs.decompress(row[0])
            return self.blobs.get(blob_id)

        try:
            return await self._readers.run(read)
        except FileNotFoundError:
            raise NotFound(f"no blob {blob_id}") from None

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: frozenset[str],
        unchangedsince: int | None = None,
    ) -> StoreResult:
        uids = list(uids)
        return await self._write(
            lambda t: message_ops.store_flags(t, mailbox_id, uids, mode, flags, unchangedsince)
        )

    async def copy(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> CopyResult:
        uids = list(uids)
        return await self._write(
            lambda t: message_ops.copy(t, src_mailbox_id, uids, dst_mailbox_id)
        )

    async def move(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> CopyResult:
        uids = list(uids)
        return await self._write(
            lambda t: message_ops.copy(
                t, src_mailbox_id, uids, dst_mailbox_id, remove_source=True
            )
        )

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        uid_list = list(uids) if uids is not None else None
        return await self._write(lambda t: message_ops.expunge(t, mailbox_id, uid_list))

    async def search_text(self, mailbox_id: int, where: TextWhere, needle: str) -> set[int]:
        return await self._read(queries.search_text, mailbox_id, where, needle)

    # -- maintenance

    async def gc(self) -> int:
        """Delete blob files no message references (left by a crash) and stale
        temporary files; returns how many blobs were removed. Runs as a writer
        job so no append can reference a blob while it is being judged."""
        return await self._write(_sweep_blobs)

    # -- delivery aliases

    async def add_alias(self, address: str, account_id: int) -> None:
        await self._write(lambda t: alias_ops.add_alias(t, address, account_id))

    async def delete_alias(self, address: str) -> None:
        await self._write(lambda t: alias_ops.delete_alias(t, address))

    async def list_aliases(self) -> list[Alias]:
        return await self._read(alias_ops.list_aliases)

    async def resolve_alias(self, address: str) -> Account | None:
        return await self._read(alias_ops.resolve_alias, address)

    async def find_recipient(
        self, candidates: Sequence[tuple[Sequence[str], Sequence[str]]]
    ) -> RecipientMatch | None:
        # Two indexed queries per LMTP RCPT, run right here on the event loop
        # (DESIGN.md allows small indexed queries there): handing them to the
        # reader pool cost more than the queries themselves (bench/lmtp.py:
        # ~0.7 ms of CPU per message for two hand-offs).
        # An MTA sends the same few recipients over and over: answers are kept
        # while directory_serial (bumped by triggers on accounts, aliases and
        # mailbox names, whoever writes) stays put, so a repeat costs one
        # one-row read. Not for an account with a quota, whose usage must be
        # read fresh.
        conn = self._quick_conn()
        # The serial is read once per turn of the event loop: a burst of
        # pipelined LMTP transactions is parsed in one turn, and each read
        # starts a WAL read transaction (~25 us, a sixth of LMTP's CPU on the
        # loop). A commit made meanwhile (by our writer thread or another
        # process) is seen from the next turn on: nothing running in this
        # turn can have learned of it, so it is as if it came just after.
        serial = self._serial_now
        if serial is None:
            serial = self._serial_now = conn.execute(
                "SELECT n FROM directory_serial").fetchone()[0]
            asyncio.get_running_loop().call_soon(self._serial_expire)
        key = tuple((tuple(names), tuple(folders)) for names, folders in candidates)
        hit = self._recipients.get(key)
        if hit is not None and hit[0] == serial:
            return hit[1]
        match = alias_ops.find_recipient(conn, candidates)
        if match is None or match.account.quota_bytes is None:
            if len(self._recipients) >= RECIPIENT_CACHE:
                self._recipients.clear()
            self._recipients[key] = (serial, match)
        return match

    def _serial_expire(self) -> None:
        self._serial_now = None

    def _quick_conn(self) -> sqlite3.Connection:
        """A read connection used on the event loop itself, for queries so
        small that a hand-off to the reader pool costs more than they do."""
        if self._writer is None:
            raise RuntimeError("the store is not open")
        if self._quick is None:
            self._quick = sqlite3.connect(self.db_path, isolation_level=None,
                                          check_same_thread=False)
            configure(self._quick)
            self._quick.execute("PRAGMA query_only = ON")
        return self._quick

    # -- change feed

    def add_listener(self, listener: Callable[[int, int], None]) -> None:
        self._feed.add(listener)

    def remove_listener(self, listener: Callable[[int, int], None]) -> None:
        self._feed.remove(listener)

    def add_names_listener(self, listener: Callable[[int], None]) -> None:
        """*listener(account_id)* when that account's mailbox names or
        subscriptions changed (in this process at once, from others when
        watch_names follows the account)."""
        self._feed.add_names(listener)

    def remove_names_listener(self, listener: Callable[[int], None]) -> None:
        self._feed.remove_names(listener)


def _sweep_blobs(txn: Txn) -> int:
    referenced = {r[0] for r in txn.conn.execute("SELECT blob_id FROM messages")}
    removed = 0
    for blob_id in list(txn.blobs.ids()):
        if blob_id not in referenced and txn.blobs.delete(blob_id):
            removed += 1
    txn.blobs.sweep_temporaries()
    return removed
