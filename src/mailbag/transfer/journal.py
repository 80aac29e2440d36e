"""The import journal: which source messages are already in which mailbox.

A small SQLite file beside the store (``DATA_DIR/import-journal.sqlite3``),
separate from the store's schema because it is bookkeeping of one admin
command, not mail. One row per imported message, keyed by (account, source
identity, source folder, message key, destination mailbox): importing the same
source into another folder is a new import, not a resume.

Crash safety without duplicates: a batch is written as *pending* rows (with
the destination's UIDNEXT before the append and each message's SHA-256)
before ``Store.append``, and marked done with its UIDs after. A run that finds
pending rows (the previous one died between the two) looks in the mailbox at
UIDs >= that UIDNEXT for messages with those hashes: found means appended
(mark done), missing means not (forget the row, import again).

A row only counts while its mailbox keeps the UIDVALIDITY it was imported
under: delete and re-create the mailbox (or the account) and the messages are
imported again.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "import-journal.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS imported (
    account     TEXT NOT NULL,
    source      TEXT NOT NULL,
    folder      TEXT NOT NULL,
    key         TEXT NOT NULL,
    mailbox     TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    floor       INTEGER NOT NULL,   -- the mailbox's UIDNEXT before the append
    blob_id     TEXT NOT NULL,      -- hex SHA-256 of the stored bytes
    uid         INTEGER,            -- NULL while pending
    PRIMARY KEY (account, source, folder, key, mailbox)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Pending:
    folder: str
    key: str
    mailbox: str
    uidvalidity: int
    floor: int
    blob_id: str


class Journal:
    """Opened read-write for an import, read-only (or absent) for a dry run."""

    def __init__(self, path: Path, account: str, source: str, *, readonly: bool = False) -> None:
        self.path = path
        self.account = account.casefold()
        self.source = source
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        if readonly:
            if path.exists():
                self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        else:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def done(self, folder: str, mailbox: str) -> dict[str, int]:
        """key -> uidvalidity of the rows of ``folder`` finished into ``mailbox``."""
        if self.conn is None:
            return {}
        try:
            rows = self.conn.execute(
                "SELECT key, uidvalidity FROM imported WHERE account = ? AND source = ?"
                " AND folder = ? AND mailbox = ? AND uid IS NOT NULL",
                (self.account, self.source, folder, mailbox),
            ).fetchall()
        except sqlite3.OperationalError:
            return {}  # a journal file without our table: nothing recorded
        return {k: v for k, v in rows}

    def pending(self) -> list[Pending]:
        if self.conn is None:
            return []
        try:
            rows = self.conn.execute(
                "SELECT folder, key, mailbox, uidvalidity, floor, blob_id FROM imported"
                " WHERE account = ? AND source = ? AND uid IS NULL",
                (self.account, self.source),
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        return [Pending(*r) for r in rows]

    def begin(self, rows: Sequence[Pending]) -> None:
        """Record a batch as pending, durably, before it is appended."""
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO imported (account, source, folder, key, mailbox,"
                " uidvalidity, floor, blob_id, uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [(self.account, self.source, r.folder, r.key, r.mailbox, r.uidvalidity,
                  r.floor, r.blob_id) for r in rows],
            )

    def finish(self, folder: str, mailbox: str, keys: Sequence[str], uids: Sequence[int],
               uidvalidity: int) -> None:
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.executemany(
                "UPDATE imported SET uid = ?, uidvalidity = ? WHERE account = ? AND source = ?"
                " AND folder = ? AND key = ? AND mailbox = ?",
                [(uid, uidvalidity, self.account, self.source, folder, key, mailbox)
                 for key, uid in zip(keys, uids, strict=True)],
            )

    def forget(self, rows: Iterable[Pending]) -> None:
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.executemany(
                "DELETE FROM imported WHERE account = ? AND source = ? AND folder = ? AND key = ?"
                " AND mailbox = ?",
                [(self.account, self.source, r.folder, r.key, r.mailbox) for r in rows],
            )


def match_pending(rows: Sequence[Pending], found: Sequence[tuple[int, str]]) -> tuple[
    list[tuple[Pending, int]], list[Pending]
]:
    """Pair pending rows with (uid, blob_id) found in their mailbox; equal
    messages pair up one to one, in UID order."""
    available: dict[str, list[int]] = {}
    for uid, blob in sorted(found):
        available.setdefault(blob, []).append(uid)
    matched: list[tuple[Pending, int]] = []
    missing: list[Pending] = []
    used: Counter[str] = Counter()
    for row in rows:
        uids = available.get(row.blob_id, [])
        if used[row.blob_id] < len(uids):
            matched.append((row, uids[used[row.blob_id]]))
            used[row.blob_id] += 1
        else:
            missing.append(row)
    return matched, missing
