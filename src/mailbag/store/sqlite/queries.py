"""Read-side queries of the SQLite backend: plain functions of a connection,
run by the reader pool (each inside one read transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from mailbag.store import names
from mailbag.store.api import (
    Account,
    Changes,
    MailboxInfo,
    MessageMeta,
    MessageRecord,
    NotFound,
    StoreError,
    TextWhere,
    ThreadMessage,
)
from mailbag.store.sqlite import rows, search_ops


def uid_list(uids: Sequence[int]) -> str:
    """A JSON array for ``IN (SELECT value FROM json_each(?))``: one parameter
    however many UIDs a command names."""
    return "[" + ",".join(map(str, map(int, uids))) + "]"


def get_account(conn: sqlite3.Connection, name: str) -> Account | None:
    row = conn.execute(f"SELECT {rows.ACCOUNT_COLS} FROM accounts WHERE name = ?", (name,)).fetchone()
    return rows.account(row) if row else None


def list_accounts(conn: sqlite3.Connection) -> list[Account]:
    cur = conn.execute(f"SELECT {rows.ACCOUNT_COLS} FROM accounts ORDER BY name")
    return [rows.account(r) for r in cur]


def quota_usage(conn: sqlite3.Connection, account_id: int) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(size), 0) FROM mailboxes WHERE account_id = ?", (account_id,)
    ).fetchone()
    return int(row[0])


def list_mailboxes(conn: sqlite3.Connection, account_id: int) -> list[MailboxInfo]:
    cur = conn.execute(
        f"SELECT {rows.MAILBOX_COLS} FROM mailboxes WHERE account_id = ? ORDER BY name",
        (account_id,),
    )
    return [rows.mailbox(r) for r in cur]


def get_mailbox(conn: sqlite3.Connection, account_id: int, name: str) -> MailboxInfo | None:
    try:
        name = names.normalize(name)
    except StoreError:
        return None
    row = conn.execute(
        f"SELECT {rows.MAILBOX_COLS} FROM mailboxes WHERE account_id = ? AND name = ?",
        (account_id, name),
    ).fetchone()
    return rows.mailbox(row) if row else None


def mailbox_by_id(conn: sqlite3.Connection, mailbox_id: int) -> MailboxInfo:
    row = conn.execute(
        f"SELECT {rows.MAILBOX_COLS} FROM mailboxes WHERE id = ?", (mailbox_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"mailbox {mailbox_id} does not exist")
    return rows.mailbox(row)


def subscriptions(conn: sqlite3.Connection, account_id: int) -> list[str]:
    cur = conn.execute(
        "SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name", (account_id,)
    )
    return [r[0] for r in cur]


def mailbox_keywords(conn: sqlite3.Connection, mailbox_id: int) -> list[str]:
    cur = conn.execute(
        "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ? ORDER BY keyword",
        (mailbox_id,),
    )
    return [r[0] for r in cur]


def message_list(conn: sqlite3.Connection, mailbox_id: int) -> list[MessageMeta]:
    mailbox_by_id(conn, mailbox_id)
    cur = conn.execute(
        "SELECT uid, flags, modseq FROM mailbox_messages WHERE mailbox_id = ? ORDER BY uid",
        (mailbox_id,),
    )
    return [rows.meta(r) for r in cur]


def count_from(conn: sqlite3.Connection, mailbox_id: int, first_uid: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM mailbox_messages WHERE mailbox_id = ? AND uid >= ?",
        (mailbox_id, first_uid),
    ).fetchone()
    return int(row[0])


def deleted_size(conn: sqlite3.Connection, mailbox_id: int) -> int:
    """Bytes of the messages flagged \\Deleted (STATUS DELETED-STORAGE,
    RFC 9208 §4.2): the partial index holds exactly those rows."""
    row = conn.execute(
        "SELECT coalesce(sum(m.size), 0) FROM mailbox_messages mm"
        " JOIN messages m ON m.id = mm.message_id"
        " WHERE mm.mailbox_id = ? AND mm.deleted = 1",
        (mailbox_id,),
    ).fetchone()
    return int(row[0])


def changes_since(conn: sqlite3.Connection, mailbox_id: int, modseq: int) -> Changes:
    row = conn.execute(
        "SELECT highestmodseq, uidnext, vanished_floor FROM mailboxes WHERE id = ?",
        (mailbox_id,)).fetchone()
    if row is None:
        raise NotFound(f"mailbox {mailbox_id} does not exist")
    highestmodseq, uidnext, floor = row
    changed = conn.execute(
        "SELECT uid, flags, modseq FROM mailbox_messages"
        " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
        (mailbox_id, modseq),
    ).fetchall()
    if modseq < floor:
        # Part of the history since *modseq* was pruned: every UID below
        # UIDNEXT that is not in the mailbox may be one the caller knew.
        present = [r[0] for r in conn.execute(
            "SELECT uid FROM mailbox_messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))]
        gone = _missing(present, uidnext)
    else:
        gone = tuple(r[0] for r in conn.execute(
            "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
            (mailbox_id, modseq)))
    return Changes(
        highestmodseq=highestmodseq,
        uidnext=uidnext,
        changed=tuple(rows.meta(r) for r in changed),
        expunged=gone,
    )


def _missing(present: Sequence[int], uidnext: int) -> tuple[int, ...]:
    """The UIDs from 1 to uidnext - 1 not in *present* (ascending)."""
    out: list[int] = []
    last = 0
    for uid in present:
        out.extend(range(last + 1, uid))
        last = uid
    out.extend(range(last + 1, uidnext))
    return tuple(out)


def fetch_records(
    conn: sqlite3.Connection, mailbox_id: int, uids: Sequence[int], facts: bool = True
) -> list[MessageRecord]:
    cols = rows.RECORD_COLS if facts else rows.RECORD_COLS.replace("m.facts", "x''")
    if uids and uids[-1] - uids[0] == len(uids) - 1 and list(uids) == sorted(uids):
        # A contiguous range (a screenful of the newest messages): a range
        # scan of the primary key instead of a JSON list join.
        where = "mm.uid BETWEEN ? AND ?"
        args: tuple[object, ...] = (mailbox_id, uids[0], uids[-1])
    else:
        where, args = "mm.uid IN (SELECT value FROM json_each(?))", (mailbox_id, uid_list(uids))
    cur = conn.execute(
        f"SELECT {cols} FROM mailbox_messages mm"
        " JOIN messages m ON m.id = mm.message_id"
        f" WHERE mm.mailbox_id = ? AND {where}"
        " ORDER BY mm.uid",
        args,
    )
    return [rows.record(r) for r in cur]


def search_text(
    conn: sqlite3.Connection, mailbox_id: int, where: TextWhere, needle: str
) -> set[int]:
    # The text index and its scan fallback live in search_ops.
    return search_ops.search_text(conn, mailbox_id, where, needle)


def referenced_blobs(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT blob_id FROM messages")}


# SORT criteria (RFC 5256 §3, RFC 5957 §3) as sort_keys/mailbox_messages
# columns; a message without a Date: sorts by its internal date.
SORT_COLUMNS = {
    "ARRIVAL": "mm.internaldate",
    "DATE": "coalesce(k.date, mm.internaldate)",
    "SIZE": "k.size",
    "SUBJECT": "k.subject",
    "FROM": "k.from_addr",
    "TO": "k.to_addr",
    "CC": "k.cc_addr",
    "DISPLAYFROM": "k.from_display",
    "DISPLAYTO": "k.to_display",
}
# Fewer candidates than this are named to SQLite; more, and the whole
# mailbox is ordered and the candidates picked out in Python (a JSON list
# join of most of a mailbox costs more than the rows it saves).
SORT_NAMED_MAX = 2000


def sort_uids(conn: sqlite3.Connection, mailbox_id: int,
              criteria: Sequence[tuple[str, bool]], uids: Sequence[int]) -> list[int]:
    """*uids* (distinct) ordered by *criteria* ((name, reverse) pairs) and
    then by ascending UID; a UID no longer in the mailbox sorts with empty
    keys (0 or ""). ORDER BY c1 [DESC], c2 [DESC], uid is what stable sorts
    from the last criterion to the first give, and the string keys are
    stored casemapped, so BINARY comparison is the i;ascii-casemap order."""
    if len(uids) > SORT_NAMED_MAX:
        order = ", ".join(SORT_COLUMNS[name] + (" DESC" if reverse else "")
                          for name, reverse in criteria)
        wanted = set(uids)
        rows = conn.execute(
            "SELECT mm.uid FROM mailbox_messages mm"
            " JOIN sort_keys k ON k.message_id = mm.message_id"
            f" WHERE mm.mailbox_id = ? ORDER BY {order + ', ' if order else ''}mm.uid",
            (mailbox_id,))
        out = [uid for (uid,) in rows if uid in wanted]
        if len(out) == len(wanted):
            return out
    # Few candidates, or some are gone: name them all, the gone ones with
    # empty keys.
    order = ", ".join(
        f"coalesce({SORT_COLUMNS[name]}, {_EMPTY[name]})" + (" DESC" if reverse else "")
        for name, reverse in criteria)
    rows = conn.execute(
        "SELECT w.value FROM json_each(?) w"
        " LEFT JOIN mailbox_messages mm ON mm.mailbox_id = ? AND mm.uid = w.value"
        " LEFT JOIN sort_keys k ON k.message_id = mm.message_id"
        f" ORDER BY {order + ', ' if order else ''}w.value",
        (uid_list(uids), mailbox_id))
    return [r[0] for r in rows]


_EMPTY = {name: "0" if name in ("ARRIVAL", "DATE", "SIZE") else "''" for name in SORT_COLUMNS}


def expunge_mark(conn: sqlite3.Connection, mailbox_id: int) -> int:
    """Store.expunge_mark: every removal of a mailbox_messages row records an
    ``expunged`` row (message_ops.remove_rows) at a new modseq, and pruning
    raises ``vanished_floor`` to what it forgot, so the larger of the two
    only grows, and grows with every expunge."""
    row = conn.execute(
        "SELECT max(vanished_floor, coalesce((SELECT max(modseq) FROM expunged"
        " WHERE mailbox_id = ?), 0)) FROM mailboxes WHERE id = ?",
        (mailbox_id, mailbox_id)).fetchone()
    return -1 if row is None else int(row[0])


def thread_facts(conn: sqlite3.Connection, mailbox_id: int,
                 uids: Sequence[int]) -> list[ThreadMessage]:
    """THREAD facts (RFC 5256 §3) of the messages of *uids* still in the
    mailbox, in UID order."""
    sql = ("SELECT mm.uid, coalesce(k.date, mm.internaldate), k.subject, k.reply,"
           " k.msgid, k.refs FROM mailbox_messages mm"
           " JOIN sort_keys k ON k.message_id = mm.message_id WHERE mm.mailbox_id = ?")
    named = len(uids) <= SORT_NAMED_MAX
    if named:
        rows = conn.execute(sql + " AND mm.uid IN (SELECT value FROM json_each(?))"
                            " ORDER BY mm.uid", (mailbox_id, uid_list(uids)))
    else:
        rows = conn.execute(sql + " ORDER BY mm.uid", (mailbox_id,))
    wanted = set(uids)
    return [ThreadMessage(uid, float(date), subject, bool(reply), msgid,
                          tuple(refs.split()) if refs else ())
            for uid, date, subject, reply, msgid, refs in rows
            if named or uid in wanted]
