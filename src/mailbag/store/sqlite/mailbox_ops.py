"""Write jobs on accounts, mailboxes and subscriptions for the SQLite writer.

Hierarchy choices (RFC 9051 §6.3.4-§6.3.6, RFC 3501 behaviour):
- CREATE (and RENAME) to "a/b/c" creates missing superiors "a" and "a/b" as
  real, selectable mailboxes (§6.3.4 SHOULD; clients such as imapclient and
  mbsync then select them).
- DELETE of a mailbox with inferiors empties it and turns it into a \\Noselect
  placeholder (``MailboxInfo.noselect``); DELETE of a placeholder with
  inferiors raises HasChildren. CREATE of a placeholder's name turns it back
  into a real mailbox with a fresh UIDVALIDITY.
  Placeholders left without inferiors (after DELETE/RENAME) are removed.
- RENAME moves inferiors along (and their subscriptions); RENAME INBOX moves
  its messages into a new mailbox and leaves INBOX (and its inferiors) in place.
- UIDVALIDITY comes from a database-wide counter that is at least the current
  time in seconds, so a mailbox re-created under an old name never reuses one.
"""

from __future__ import annotations

import sqlite3
import time

from mailbag.store import names
from mailbag.store.api import (
    DEFAULT_MAILBOXES,
    Account,
    AlreadyExists,
    HasChildren,
    MailboxInfo,
    NotAllowed,
    NotFound,
)
from mailbag.store.sqlite import message_ops, queries, rows
from mailbag.store.sqlite.writer import Txn

_UIDVALIDITY_MAX = 2**32 - 1


def _next_uidvalidity(txn: Txn) -> int:
    row = txn.conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
    last = int(row[0]) if row else 0
    value = max(int(time.time()), last + 1)
    if value > _UIDVALIDITY_MAX:
        # Good until 2106; after that wrap rather than overflow nz-number.
        value = 1
    txn.conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('uidvalidity', ?)", (value,)
    )
    return value


def _account_exists(conn: sqlite3.Connection, account_id: int) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise NotFound(f"account {account_id} does not exist")


def _row(conn: sqlite3.Connection, account_id: int, name: str) -> MailboxInfo | None:
    row = conn.execute(
        f"SELECT {rows.MAILBOX_COLS} FROM mailboxes WHERE account_id = ? AND name = ?",
        (account_id, name),
    ).fetchone()
    return rows.mailbox(row) if row else None


def _has_children(conn: sqlite3.Connection, account_id: int, name: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM mailboxes WHERE account_id = ? AND name LIKE ? ESCAPE '\\' LIMIT 1",
            (account_id, names.like_children(name)),
        ).fetchone()
        is not None
    )


def _insert(
    txn: Txn, account_id: int, name: str, special_use: str | None, noselect: bool
) -> int:
    cur = txn.conn.execute(
        "INSERT INTO mailboxes (account_id, name, special_use, uidvalidity, noselect)"
        " VALUES (?, ?, ?, ?, ?)",
        (account_id, name, special_use, _next_uidvalidity(txn), int(noselect)),
    )
    return int(cur.lastrowid or 0)


def _ensure_parents(txn: Txn, account_id: int, name: str) -> None:
    for parent in names.parents(name):
        if _row(txn.conn, account_id, parent) is None:
            _insert(txn, account_id, parent, None, noselect=False)


def _prune_placeholders(txn: Txn, account_id: int, name: str) -> None:
    """Remove placeholder superiors of ``name`` that no longer have inferiors."""
    for parent in reversed(names.parents(name)):
        box = _row(txn.conn, account_id, parent)
        if box is None or not box.noselect:
            return
        if _has_children(txn.conn, account_id, parent):
            return
        txn.conn.execute("DELETE FROM mailboxes WHERE id = ?", (box.id,))


# -- accounts


def create_account(txn: Txn, name: str, password_hash: str) -> Account:
    conn = txn.conn
    if conn.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
        raise AlreadyExists(f"account {name!r} already exists")
    cur = conn.execute(
        "INSERT INTO accounts (name, password_hash, created) VALUES (?, ?, ?)",
        (name, password_hash, int(txn.now)),
    )
    account_id = int(cur.lastrowid or 0)
    for mailbox_name, special_use in DEFAULT_MAILBOXES:
        _insert(txn, account_id, mailbox_name, special_use, noselect=False)
        conn.execute(
            "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
            (account_id, mailbox_name),
        )
    return Account(id=account_id, name=name, password_hash=password_hash)


def set_password_hash(txn: Txn, account_id: int, password_hash: str) -> None:
    _account_exists(txn.conn, account_id)
    txn.conn.execute(
        "UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)
    )


def set_quota(txn: Txn, account_id: int, quota_bytes: int | None) -> None:
    _account_exists(txn.conn, account_id)
    txn.conn.execute("UPDATE accounts SET quota_bytes = ? WHERE id = ?", (quota_bytes, account_id))


def set_disabled(txn: Txn, account_id: int, disabled: bool) -> None:
    _account_exists(txn.conn, account_id)
    txn.conn.execute("UPDATE accounts SET disabled = ? WHERE id = ?", (int(disabled), account_id))


def delete_account(txn: Txn, account_id: int) -> None:
    conn = txn.conn
    _account_exists(conn, account_id)
    message_ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT DISTINCT mm.message_id FROM mailbox_messages mm"
            " JOIN mailboxes b ON b.id = mm.mailbox_id WHERE b.account_id = ?",
            (account_id,),
        )
    ]
    for (mailbox_id,) in conn.execute(
        "SELECT id FROM mailboxes WHERE account_id = ?", (account_id,)
    ).fetchall():
        # Sessions still selected in these mailboxes wake up and find them gone.
        message_ops.bump(txn, int(mailbox_id))
    # Mailboxes, their messages, keywords, expunged records and subscriptions
    # go by ON DELETE CASCADE.
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))
    message_ops.drop_unreferenced(txn, message_ids)


# -- mailboxes


def create_mailbox(
    txn: Txn, account_id: int, name: str, special_use: str | None
) -> MailboxInfo:
    conn = txn.conn
    _account_exists(conn, account_id)
    name = names.normalize(name)
    existing = _row(conn, account_id, name)
    if existing is not None and not existing.noselect:
        raise AlreadyExists(f"mailbox {name!r} already exists")
    if existing is not None:
        conn.execute(
            "UPDATE mailboxes SET noselect = 0, special_use = ?, uidvalidity = ?,"
            " uidnext = 1, recent_uid = 1 WHERE id = ?",
            (special_use, _next_uidvalidity(txn), existing.id),
        )
        mailbox_id = existing.id
    else:
        _ensure_parents(txn, account_id, name)
        mailbox_id = _insert(txn, account_id, name, special_use, noselect=False)
    return queries.mailbox_by_id(conn, mailbox_id)


def delete_mailbox(txn: Txn, account_id: int, name: str) -> None:
    conn = txn.conn
    name = names.normalize(name)
    if names.is_inbox(name):
        raise NotAllowed("INBOX cannot be deleted")
    box = _row(conn, account_id, name)
    if box is None:
        raise NotFound(f"mailbox {name!r} does not exist")
    children = _has_children(conn, account_id, name)
    if children and box.noselect:
        raise HasChildren(f"{name!r} has inferior mailboxes and holds no messages")
    everything = message_ops._select_rows(conn, box.id, None, False)
    if children:
        message_ops.remove_rows(txn, box.id, everything)
        message_ops.bump(txn, box.id)
        conn.execute("DELETE FROM mailbox_keywords WHERE mailbox_id = ?", (box.id,))
        conn.execute(
            "UPDATE mailboxes SET noselect = 1, special_use = NULL WHERE id = ?", (box.id,)
        )
        return
    message_ops.bump(txn, box.id)
    conn.execute("DELETE FROM mailboxes WHERE id = ?", (box.id,))
    message_ops.drop_unreferenced(txn, {int(r[1]) for r in everything})
    _prune_placeholders(txn, account_id, name)


def rename_mailbox(txn: Txn, account_id: int, old: str, new: str) -> None:
    conn = txn.conn
    old = names.normalize(old)
    new = names.normalize(new)
    box = _row(conn, account_id, old)
    if box is None:
        raise NotFound(f"mailbox {old!r} does not exist")
    if names.is_inbox(new) or old == new:
        raise AlreadyExists(f"mailbox {new!r} already exists")
    if names.is_inbox(old):
        # Allowed even to "INBOX/x": INBOX itself stays where it is.
        _rename_inbox(txn, account_id, box, new)
        return
    if names.is_inferior(new, old):
        raise NotAllowed(f"cannot rename {old!r} into its own inferior {new!r}")
    moving = [box] + [
        rows.mailbox(r)
        for r in conn.execute(
            f"SELECT {rows.MAILBOX_COLS} FROM mailboxes"
            " WHERE account_id = ? AND name LIKE ? ESCAPE '\\'",
            (account_id, names.like_children(old)),
        )
    ]
    targets = {m.id: names.renamed(m.name, old, new) for m in moving}
    for target in targets.values():
        clash = _row(conn, account_id, target)
        if clash is None:
            continue
        if not clash.noselect:
            raise AlreadyExists(f"mailbox {target!r} already exists")
        # A placeholder gives way to the real mailbox arriving under its name.
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (clash.id,))
    # Two steps so a rename never collides with a not-yet-renamed sibling
    # on the UNIQUE (account_id, name) constraint.
    for m in moving:
        conn.execute(
            "UPDATE mailboxes SET name = ? WHERE id = ?", (f"\x00rename\x00{m.id}", m.id)
        )
    for mailbox_id, target in targets.items():
        conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (target, mailbox_id))
    _rename_subscriptions(conn, account_id, old, new)
    _ensure_parents(txn, account_id, new)
    _prune_placeholders(txn, account_id, old)


def _rename_subscriptions(conn: sqlite3.Connection, account_id: int, old: str, new: str) -> None:
    subs = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM subscriptions WHERE account_id = ?"
            " AND (name = ? OR name LIKE ? ESCAPE '\\')",
            (account_id, old, names.like_children(old)),
        )
    ]
    for sub in subs:
        conn.execute(
            "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, sub)
        )
    conn.executemany(
        "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
        [(account_id, names.renamed(sub, old, new)) for sub in subs],
    )


def _rename_inbox(txn: Txn, account_id: int, inbox: MailboxInfo, new: str) -> None:
    """RFC 9051 §6.3.6: move every INBOX message to a new mailbox ``new``;
    INBOX stays, empty, with its inferiors."""
    conn = txn.conn
    clash = _row(conn, account_id, new)
    if clash is not None and not clash.noselect:
        raise AlreadyExists(f"mailbox {new!r} already exists")
    if clash is not None:
        conn.execute("DELETE FROM mailboxes WHERE id = ?", (clash.id,))
    _ensure_parents(txn, account_id, new)
    dst_id = _insert(txn, account_id, new, None, noselect=False)
    found = message_ops._select_rows(conn, inbox.id, None, False)
    if found:
        message_ops.copy(txn, inbox.id, [int(r[0]) for r in found], dst_id, remove_source=True)


def set_subscribed(txn: Txn, account_id: int, name: str, subscribed: bool) -> None:
    _account_exists(txn.conn, account_id)
    name = names.normalize(name)
    if subscribed:
        txn.conn.execute(
            "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)",
            (account_id, name),
        )
    else:
        txn.conn.execute(
            "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", (account_id, name)
        )
