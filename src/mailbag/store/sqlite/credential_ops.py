"""Credentials in the SQLite backend: SCRAM secrets (RFC 5803 form), TOTP
secrets with replay protection (RFC 6238 §5.2), the second-factor flag and
per-device app passwords (docs/auth.md).

Read functions take a connection (reader pool); write jobs take a ``Txn``
(writer thread), like queries.py and mailbox_ops.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mailbag.store.api import AccountCredentials, AlreadyExists, AppPassword, NotFound
from mailbag.store.sqlite.writer import Txn

_APP_COLS = "id, account_id, label, selector, hash, created, last_used, last_ip, revoked"


def _time(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _app(row: Sequence[Any]) -> AppPassword:
    return AppPassword(
        id=row[0],
        account_id=row[1],
        label=row[2],
        selector=row[3],
        hash=row[4],
        created=datetime.fromtimestamp(row[5], UTC),
        last_used=_time(row[6]),
        last_ip=row[7],
        revoked=_time(row[8]),
    )


def _account_exists(conn: sqlite3.Connection, account_id: int) -> None:
    if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
        raise NotFound(f"account {account_id} does not exist")


# -- reads


def get_credentials(conn: sqlite3.Connection, account_id: int) -> AccountCredentials:
    row = conn.execute(
        "SELECT scram_sha256, totp_secret, totp_last_step, require_second_factor"
        " FROM accounts WHERE id = ?",
        (account_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"account {account_id} does not exist")
    return AccountCredentials(row[0], row[1], int(row[2]), bool(row[3]))


def list_app_passwords(
    conn: sqlite3.Connection, account_id: int, include_revoked: bool
) -> list[AppPassword]:
    where = "" if include_revoked else " AND revoked IS NULL"
    cur = conn.execute(
        f"SELECT {_APP_COLS} FROM app_passwords WHERE account_id = ?{where} ORDER BY created, id",
        (account_id,),
    )
    return [_app(r) for r in cur]


def app_password_candidates(
    conn: sqlite3.Connection, account_id: int, selector: str
) -> list[AppPassword]:
    cur = conn.execute(
        f"SELECT {_APP_COLS} FROM app_passwords"
        " WHERE account_id = ? AND selector = ? AND revoked IS NULL",
        (account_id, selector),
    )
    return [_app(r) for r in cur]


def revoked_app_passwords(conn: sqlite3.Connection, ids: Sequence[int]) -> set[int]:
    wanted = {int(i) for i in ids}
    if not wanted:
        return set()
    live = {
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM app_passwords WHERE revoked IS NULL"
            " AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(wanted)),),
        )
    }
    return wanted - live


# -- writes


def set_scram_credentials(txn: Txn, account_id: int, scram: str | None) -> None:
    _account_exists(txn.conn, account_id)
    txn.conn.execute("UPDATE accounts SET scram_sha256 = ? WHERE id = ?", (scram, account_id))


def set_totp_secret(txn: Txn, account_id: int, secret: str | None) -> None:
    _account_exists(txn.conn, account_id)
    # A new secret starts a new step history.
    txn.conn.execute(
        "UPDATE accounts SET totp_secret = ?, totp_last_step = 0 WHERE id = ?",
        (secret, account_id),
    )


def claim_totp_step(txn: Txn, account_id: int, step: int) -> bool:
    cur = txn.conn.execute(
        "UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
        (step, account_id, step),
    )
    return cur.rowcount == 1


def set_require_second_factor(txn: Txn, account_id: int, required: bool) -> None:
    _account_exists(txn.conn, account_id)
    txn.conn.execute(
        "UPDATE accounts SET require_second_factor = ? WHERE id = ?", (int(required), account_id)
    )


def add_app_password(
    txn: Txn, account_id: int, label: str, selector: str, password_hash: str
) -> AppPassword:
    conn = txn.conn
    _account_exists(conn, account_id)
    if conn.execute(
        "SELECT 1 FROM app_passwords WHERE account_id = ? AND label = ? AND revoked IS NULL",
        (account_id, label),
    ).fetchone():
        raise AlreadyExists(f"an app password labelled {label!r} exists")
    cur = conn.execute(
        "INSERT INTO app_passwords (account_id, label, selector, hash, created)"
        " VALUES (?, ?, ?, ?, ?)",
        (account_id, label, selector, password_hash, int(txn.now)),
    )
    row = conn.execute(
        f"SELECT {_APP_COLS} FROM app_passwords WHERE id = ?", (cur.lastrowid,)
    ).fetchone()
    return _app(row)


def revoke_app_password(txn: Txn, account_id: int, label: str) -> AppPassword:
    conn = txn.conn
    row = conn.execute(
        f"SELECT {_APP_COLS} FROM app_passwords"
        " WHERE account_id = ? AND label = ? AND revoked IS NULL",
        (account_id, label),
    ).fetchone()
    if row is None:
        raise NotFound(f"no app password labelled {label!r}")
    conn.execute("UPDATE app_passwords SET revoked = ? WHERE id = ?", (int(txn.now), row[0]))
    row = conn.execute(f"SELECT {_APP_COLS} FROM app_passwords WHERE id = ?", (row[0],)).fetchone()
    return _app(row)


def record_app_password_use(
    txn: Txn, app_password_id: int, remote_ip: str, new_hash: str | None
) -> None:
    txn.conn.execute(
        "UPDATE app_passwords SET last_used = ?, last_ip = ?, hash = coalesce(?, hash)"
        " WHERE id = ?",
        (int(txn.now), remote_ip, new_hash, app_password_id),
    )
