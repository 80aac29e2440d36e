"""Delivery aliases of the SQLite backend: an address (``list@example.org``)
or a bare local part (``postmaster``, any local domain) naming the account
that receives its mail. Used by LMTP and ``mailbag deliver``
(lmtp/addresses.py decides the lookup order); managed by ``mailbag alias``.
``find_recipient`` does a recipient's whole look-up (account or alias,
folder, quota use) in one read, for LMTP RCPT.

Addresses are stored lower-cased and compared case-insensitively (local parts
are case-insensitive in mailbag, a choice RFC 5321 §2.4 leaves to the host).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from mailbag.store import names
from mailbag.store.api import (
    INBOX,
    Account,
    Alias,
    AlreadyExists,
    NotFound,
    RecipientMatch,
    StoreError,
)
from mailbag.store.sqlite import queries, rows
from mailbag.store.sqlite.writer import Txn


def add_alias(txn: Txn, address: str, account_id: int) -> None:
    conn = txn.conn
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise NotFound(f"account {account_id} does not exist")
    try:
        conn.execute(
            "INSERT INTO aliases (address, account_id, created) VALUES (?, ?, ?)",
            (address.lower(), account_id, int(txn.now)),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"alias {address} exists") from None


def delete_alias(txn: Txn, address: str) -> None:
    cur = txn.conn.execute("DELETE FROM aliases WHERE address = ?", (address.lower(),))
    if cur.rowcount == 0:
        raise NotFound(f"no alias {address}")


def list_aliases(conn: sqlite3.Connection) -> list[Alias]:
    cur = conn.execute(
        "SELECT a.address, c.name FROM aliases a JOIN accounts c ON c.id = a.account_id"
        " ORDER BY a.address"
    )
    return [Alias(address=r[0], account=r[1]) for r in cur]


def resolve_alias(conn: sqlite3.Connection, address: str) -> Account | None:
    row = conn.execute(
        f"SELECT {rows.ACCOUNT_COLS} FROM accounts"
        " WHERE id = (SELECT account_id FROM aliases WHERE address = ?)",
        (address.lower(),),
    ).fetchone()
    return rows.account(row) if row else None


def find_recipient(
    conn: sqlite3.Connection, candidates: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> RecipientMatch | None:
    """Store.find_recipient in two statements (each its own snapshot; no
    BEGIN/COMMIT): it runs on the event loop, and every statement gives up
    and takes back the GIL, which costs more than the query while other
    threads parse. Order: the candidates in turn; within one, an account of
    any of its names before an alias of any of them; names in order."""
    wanted = [[i, j, name] for i, (names, _f) in enumerate(candidates)
              for j, name in enumerate(names)]
    row = conn.execute(
        f"WITH c AS (SELECT value ->> 0 AS ci, value ->> 1 AS ni, value ->> 2 AS name"
        f"           FROM json_each(?1))"
        f" SELECT {_ACCOUNT_COLS_A}, ci, 0 AS kind, ni FROM c"
        f"  JOIN accounts a ON a.name = c.name"
        f" UNION ALL"
        f" SELECT {_ACCOUNT_COLS_A}, ci, 1 AS kind, ni FROM c"
        f"  JOIN aliases al ON al.address = lower(c.name) JOIN accounts a ON a.id = al.account_id"
        f" ORDER BY ci, kind, ni LIMIT 1",
        (json.dumps(wanted),),
    ).fetchone()
    if row is None:
        return None
    account = rows.account(row)
    index = int(row[5])
    folders: list[str] = []
    for name in (*candidates[index][1], INBOX):
        try:
            folders.append(names.normalize(name))
        except StoreError:
            continue
    found = conn.execute(
        f"SELECT {_MAILBOX_COLS_M}, f.key,"
        " (SELECT coalesce(sum(size), 0) FROM mailboxes WHERE account_id = ?1)"
        " FROM json_each(?2) f JOIN mailboxes m ON m.account_id = ?1 AND m.name = f.value"
        " WHERE m.noselect = 0 ORDER BY f.key LIMIT 1",
        (account.id, json.dumps(folders)),
    ).fetchone()
    box = rows.mailbox(found) if found is not None else None
    used: int | None = None
    if account.quota_bytes is not None:
        used = int(found[-1]) if found is not None else queries.quota_usage(conn, account.id)
    return RecipientMatch(candidate=index, account=account, mailbox=box, quota_used=used)


_ACCOUNT_COLS_A = ", ".join(f"a.{c.strip()}" for c in rows.ACCOUNT_COLS.split(","))
_MAILBOX_COLS_M = ", ".join(f"m.{c.strip()}" for c in rows.MAILBOX_COLS.split(","))
