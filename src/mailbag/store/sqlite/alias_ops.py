"""Delivery aliases of the SQLite backend: an address (``list@example.org``)
or a bare local part (``postmaster``, any local domain) naming the account
that receives its mail. Used by LMTP and ``mailbag deliver``
(lmtp/addresses.py decides the lookup order); managed by ``mailbag alias``.

Addresses are stored lower-cased and compared case-insensitively (local parts
are case-insensitive in mailbag, a choice RFC 5321 §2.4 leaves to the host).
"""

from __future__ import annotations

import sqlite3

from mailbag.store.api import Account, Alias, AlreadyExists, NotFound
from mailbag.store.sqlite import rows
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
