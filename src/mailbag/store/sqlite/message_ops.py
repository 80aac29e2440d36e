"""Write jobs on messages (append, flags, copy, move, expunge) for the SQLite
writer thread. Each takes the open ``Txn`` and runs inside the batch's
transaction; raising rolls back that job alone.

Modseq: a job bumps the mailbox's highestmodseq once and stamps every row it
touches with the new value (RFC 7162 lets several messages share a modseq).
Counters in ``mailboxes`` (messages, unseen, deleted, size) move with every
row change so STATUS needs no counting.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailbag.store import flags as flaglib
from mailbag.store.api import (
    AppendItem,
    AppendResult,
    CopyResult,
    FlagMode,
    MailboxInfo,
    MessageMeta,
    NotAllowed,
    OverQuota,
    StoreResult,
)
from mailbag.store.ingest import PreparedMessage
from mailbag.store.sqlite import queries, rows, schema
from mailbag.store.sqlite.writer import Txn


def selectable(conn: sqlite3.Connection, mailbox_id: int) -> MailboxInfo:
    box = queries.mailbox_by_id(conn, mailbox_id)
    if box.noselect:
        raise NotAllowed(f"mailbox {box.name!r} cannot hold messages")
    return box


def bump(txn: Txn, mailbox_id: int) -> int:
    """Give ``mailbox_id`` a new highestmodseq for this job and return it."""
    row = txn.conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
        " RETURNING highestmodseq",
        (mailbox_id,),
    ).fetchone()
    modseq = int(row[0])
    txn.effects.touched[mailbox_id] = modseq
    return modseq


def check_quota(conn: sqlite3.Connection, account_id: int, adding: int) -> None:
    row = conn.execute("SELECT quota_bytes FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None or row[0] is None:
        return
    used = queries.quota_usage(conn, account_id)
    if used + adding > row[0]:
        raise OverQuota(f"quota exceeded: {used} + {adding} bytes > {row[0]}")


def add_keywords(conn: sqlite3.Connection, mailbox_id: int, flags: Iterable[str]) -> None:
    words = flaglib.keywords(flags)
    if words:
        conn.executemany(
            "INSERT OR IGNORE INTO mailbox_keywords (mailbox_id, keyword) VALUES (?, ?)",
            [(mailbox_id, w) for w in words],
        )


def _ensure_message(txn: Txn, msg: PreparedMessage) -> int:
    conn = txn.conn
    row = conn.execute("SELECT id FROM messages WHERE blob_id = ?", (msg.blob_id,)).fetchone()
    if row is not None:
        return int(row[0])
    if msg.inline is None:
        # The blob was written before this job was queued, but if an equal
        # message was expunged meanwhile its file may have been deleted after
        # that commit: put() is a cheap stat when the file is there and
        # rewrites it otherwise.
        txn.blobs.put(msg.blob_id, msg.raw)
    sent = int(msg.sent_date.timestamp()) if msg.sent_date is not None else None
    cur = conn.execute(
        "INSERT INTO messages (blob_id, size, sent_date, facts, envelope, body, bodystructure,"
        " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (msg.blob_id, msg.size, sent, msg.facts, msg.envelope, msg.body, msg.bodystructure,
         msg.inline),
    )
    message_id = int(cur.lastrowid or 0)
    conn.execute(f"INSERT INTO sort_keys ({schema.SORT_KEY_COLS})"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 schema.sort_key_row(message_id, sent, msg.size, msg.sort_keys))
    texts = (msg.search_headers, msg.search_body, *msg.search_fields)
    conn.execute(
        "INSERT INTO message_text (message_id, headers, body,"
        " f_from, f_to, f_cc, f_bcc, f_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (message_id, *texts),
    )
    # Indexed once per transaction, before COMMIT (writer.py says why).
    txn.index_text(message_id, texts)
    return message_id


@dataclass(slots=True)
class _Counts:
    messages: int = 0
    unseen: int = 0
    deleted: int = 0
    size: int = 0

    def add(self, flags: frozenset[str], size: int, sign: int = 1) -> None:
        """Count a message in (sign 1) or out (-1); or *sign* messages alike."""
        self.messages += sign
        self.unseen += sign * (not flaglib.has(flags, flaglib.SEEN))
        self.deleted += sign * flaglib.has(flags, flaglib.DELETED)
        self.size += sign * size

    def save(self, conn: sqlite3.Connection, mailbox_id: int) -> None:
        conn.execute(
            "UPDATE mailboxes SET messages = messages + ?, unseen = unseen + ?,"
            " deleted = deleted + ?, size = size + ? WHERE id = ?",
            (self.messages, self.unseen, self.deleted, self.size, mailbox_id),
        )


def _insert_row(
    conn: sqlite3.Connection,
    mailbox_id: int,
    uid: int,
    message_id: int,
    flags: frozenset[str],
    modseq: int,
    internaldate: tuple[int, int],
    savedate: int,
) -> None:
    conn.execute(
        "INSERT INTO mailbox_messages (mailbox_id, uid, message_id, flags, seen, deleted,"
        " modseq, internaldate, internaldate_tz, savedate) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            mailbox_id,
            uid,
            message_id,
            flaglib.encode(flags),
            flaglib.has(flags, flaglib.SEEN),
            flaglib.has(flags, flaglib.DELETED),
            modseq,
            internaldate[0],
            internaldate[1],
            savedate,
        ),
    )


def append(
    txn: Txn, mailbox_id: int, items: Sequence[AppendItem], prepared: Sequence[PreparedMessage]
) -> AppendResult:
    conn = txn.conn
    box = selectable(conn, mailbox_id)
    check_quota(conn, box.account_id, sum(p.size for p in prepared))
    modseq = bump(txn, mailbox_id)
    counts = _Counts()
    uid = box.uidnext
    uids: list[int] = []
    now = int(txn.now)
    for item, msg in zip(items, prepared, strict=True):
        message_id = _ensure_message(txn, msg)
        flags = flaglib.canonical(item.flags)
        when = rows.to_stamp(item.internaldate) if item.internaldate else (now, 0)
        _insert_row(conn, mailbox_id, uid, message_id, flags, modseq, when, now)
        add_keywords(conn, mailbox_id, flags)
        counts.add(flags, msg.size)
        uids.append(uid)
        uid += 1
    # counts.save() and the new uidnext in one statement (a delivery's job
    # is a dozen statements; each costs a GIL round trip in the writer).
    conn.execute(
        "UPDATE mailboxes SET messages = messages + ?, unseen = unseen + ?,"
        " deleted = deleted + ?, size = size + ?, uidnext = ? WHERE id = ?",
        (counts.messages, counts.unseen, counts.deleted, counts.size, uid, mailbox_id),
    )
    return AppendResult(uidvalidity=box.uidvalidity, uids=tuple(uids), highestmodseq=modseq)


def store_flags(
    txn: Txn,
    mailbox_id: int,
    uids: Sequence[int],
    mode: FlagMode,
    flags: frozenset[str],
    unchangedsince: int | None,
) -> StoreResult:
    conn = txn.conn
    selectable(conn, mailbox_id)
    found = conn.execute(
        "SELECT uid, flags, modseq FROM mailbox_messages"
        " WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))"
        " ORDER BY uid",
        (mailbox_id, queries.uid_list(uids)),
    ).fetchall()
    # A mailbox has few distinct flag sets: work per set, not per message,
    # so that STORE 1:* costs a handful of UPDATE statements.
    groups: dict[str, list[int]] = {}
    modified: list[int] = []
    for uid, encoded, row_modseq in found:
        if unchangedsince is not None and row_modseq > unchangedsince:
            modified.append(uid)
        else:
            groups.setdefault(encoded, []).append(uid)
    unchanged: list[int] = []
    updates: list[tuple[frozenset[str], frozenset[str], list[int]]] = []
    for encoded, group in groups.items():
        old = flaglib.decode(encoded)
        new = flaglib.apply(old, mode, flags)
        if flaglib.same(old, new):
            unchanged.extend(group)
        else:
            updates.append((old, new, group))
    changed: list[MessageMeta] = []
    if updates:
        modseq = bump(txn, mailbox_id)
        counts = _Counts()
        for old, new, group in updates:
            counts.add(old, 0, -len(group))
            counts.add(new, 0, len(group))
            conn.execute(
                "UPDATE mailbox_messages SET flags = ?, seen = ?, deleted = ?, modseq = ?"
                " WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
                (
                    flaglib.encode(new),
                    flaglib.has(new, flaglib.SEEN),
                    flaglib.has(new, flaglib.DELETED),
                    modseq,
                    mailbox_id,
                    queries.uid_list(group),
                ),
            )
            changed.extend(MessageMeta(uid=uid, flags=new, modseq=modseq) for uid in group)
        changed.sort(key=lambda m: m.uid)
        counts.save(conn, mailbox_id)
        add_keywords(conn, mailbox_id, {f for _o, new, _g in updates for f in new})
    unchanged.sort()
    return StoreResult(
        changed=tuple(changed), unchanged_uids=tuple(unchanged), modified_uids=tuple(modified)
    )


_ROW_COLS = (
    "mm.uid, mm.message_id, mm.flags, m.size, mm.internaldate, mm.internaldate_tz, m.blob_id"
)


def _select_rows(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int] | None, deleted_only: bool
) -> list[sqlite3.Row]:
    sql = (
        f"SELECT {_ROW_COLS} FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id"
        " WHERE mm.mailbox_id = ?"
    )
    args: list[object] = [mailbox_id]
    if deleted_only:
        sql += " AND mm.deleted = 1"
    if uids is not None:
        sql += " AND mm.uid IN (SELECT value FROM json_each(?))"
        args.append(queries.uid_list(uids))
    return conn.execute(sql + " ORDER BY mm.uid", args).fetchall()


def remove_rows(txn: Txn, mailbox_id: int, found: Sequence[Sequence[object]]) -> list[int]:
    """Delete these (``_ROW_COLS``) rows from a mailbox, record them as expunged,
    and drop message rows nobody references any more. Returns their uids."""
    if not found:
        return []
    conn = txn.conn
    modseq = bump(txn, mailbox_id)
    counts = _Counts()
    uids: list[int] = []
    message_ids: set[int] = set()
    for uid, message_id, encoded, size, *_rest in found:
        assert isinstance(uid, int) and isinstance(message_id, int)
        assert isinstance(encoded, str) and isinstance(size, int)
        counts.add(flaglib.decode(encoded), size, -1)
        uids.append(uid)
        message_ids.add(message_id)
    uid_json = json.dumps(uids)
    conn.execute(
        "DELETE FROM mailbox_messages WHERE mailbox_id = ?"
        " AND uid IN (SELECT value FROM json_each(?))",
        (mailbox_id, uid_json),
    )
    now = int(time.time())
    conn.executemany(
        "INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, at) VALUES (?, ?, ?, ?)",
        [(mailbox_id, uid, modseq, now) for uid in uids],
    )
    counts.save(conn, mailbox_id)
    drop_unreferenced(txn, message_ids)
    return uids


def prune_expunged(txn: Txn, before: int) -> int:
    """Forget the expunges made before unix time *before*; each mailbox's
    vanished_floor rises to the highest modseq forgotten (changes_since then
    answers older modseqs with every missing UID). Returns how many."""
    conn = txn.conn
    conn.execute(
        "UPDATE mailboxes SET vanished_floor = f.floor FROM"
        " (SELECT mailbox_id, MAX(modseq) AS floor FROM expunged WHERE at < ?"
        "  GROUP BY mailbox_id) AS f"
        " WHERE mailboxes.id = f.mailbox_id AND f.floor > mailboxes.vanished_floor",
        (before,),
    )
    return int(conn.execute("DELETE FROM expunged WHERE at < ?", (before,)).rowcount)


def drop_unreferenced(txn: Txn, message_ids: Iterable[int]) -> None:
    """Delete message rows no mailbox holds; their blobs go after commit."""
    conn = txn.conn
    for message_id in message_ids:
        if conn.execute(
            "SELECT 1 FROM mailbox_messages WHERE message_id = ? LIMIT 1", (message_id,)
        ).fetchone():
            continue
        row = conn.execute("SELECT blob_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            continue
        txn.unindex_text(message_id)
        conn.execute("DELETE FROM message_text WHERE message_id = ?", (message_id,))
        conn.execute("DELETE FROM sort_keys WHERE message_id = ?", (message_id,))
        conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
        txn.effects.dropped_blobs.add(row[0])


def expunge(txn: Txn, mailbox_id: int, uids: Sequence[int] | None) -> list[int]:
    selectable(txn.conn, mailbox_id)
    return remove_rows(txn, mailbox_id, _select_rows(txn.conn, mailbox_id, uids, True))


def copy(
    txn: Txn, src_id: int, uids: Sequence[int], dst_id: int, *, remove_source: bool = False
) -> CopyResult:
    """COPY (RFC 9051 §6.4.7) or, with ``remove_source``, MOVE (RFC 6851)."""
    conn = txn.conn
    selectable(conn, src_id)
    dst = selectable(conn, dst_id)
    found = _select_rows(conn, src_id, uids, False)
    if not found:
        return CopyResult(uidvalidity=dst.uidvalidity, source_uids=(), dest_uids=())
    added = sum(int(r[3]) for r in found)
    # A MOVE within one account frees what it adds.
    src_account = queries.mailbox_by_id(conn, src_id).account_id
    if not (remove_source and src_account == dst.account_id):
        check_quota(conn, dst.account_id, added)
    modseq = bump(txn, dst_id)
    counts = _Counts()
    uid = dst.uidnext
    now = int(txn.now)
    source_uids: list[int] = []
    dest_uids: list[int] = []
    for src_uid, message_id, encoded, size, idate, idate_tz, _blob in found:
        flags = flaglib.decode(encoded)
        _insert_row(conn, dst_id, uid, message_id, flags, modseq, (idate, idate_tz), now)
        add_keywords(conn, dst_id, flags)
        counts.add(flags, size)
        source_uids.append(src_uid)
        dest_uids.append(uid)
        uid += 1
    counts.save(conn, dst_id)
    conn.execute("UPDATE mailboxes SET uidnext = ? WHERE id = ?", (uid, dst_id))
    if remove_source:
        remove_rows(txn, src_id, found)
    return CopyResult(
        uidvalidity=dst.uidvalidity, source_uids=tuple(source_uids), dest_uids=tuple(dest_uids),
        highestmodseq=modseq,
    )


def save_recent(txn: Txn, mailbox_id: int, uidvalidity: int, first_recent: int) -> None:
    txn.conn.execute(
        "UPDATE mailboxes SET recent_uid = max(recent_uid, ?) WHERE id = ? AND uidvalidity = ?",
        (first_recent, mailbox_id, uidvalidity),
    )


def claim_recent(txn: Txn, mailbox_id: int) -> int:
    row = txn.conn.execute(
        "SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", (mailbox_id,)
    ).fetchone()
    if row is None:
        queries.mailbox_by_id(txn.conn, mailbox_id)  # raises NotFound
    first, uidnext = int(row[0]), int(row[1])
    txn.conn.execute("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", (uidnext, mailbox_id))
    return first
