"""The SQLite schema of the embedded backend and its migrations
(``PRAGMA user_version`` holds the schema version).

Messages are content rows shared by every mailbox that holds them (COPY and
duplicate deliveries add a ``mailbox_messages`` row, not a message); a message
row lives as long as some ``mailbox_messages`` row references it. Mailbox
counters (messages, unseen, deleted, size) are kept up to date by the writer
so STATUS and SELECT never count rows.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    quota_bytes   INTEGER,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL
);

CREATE TABLE mailboxes (
    -- AUTOINCREMENT: an id is never reused, so nothing keyed by it (a cached
    -- index, a session's selection) can ever point at a newer mailbox.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    special_use   TEXT,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    recent_uid    INTEGER NOT NULL DEFAULT 1,  -- first UID still \\Recent
    noselect      INTEGER NOT NULL DEFAULT 0,  -- placeholder kept for its children
    messages      INTEGER NOT NULL DEFAULT 0,
    unseen        INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0,
    size          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

CREATE TABLE mailbox_keywords (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    keyword    TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (mailbox_id, keyword)
) WITHOUT ROWID;

CREATE TABLE messages (
    id        INTEGER PRIMARY KEY,
    blob_id   TEXT NOT NULL UNIQUE,           -- hex SHA-256 of the raw message
    size      INTEGER NOT NULL,
    sent_date INTEGER,                        -- Date: header, unix seconds
    facts     BLOB NOT NULL                   -- mime.ParsedMessage.to_bytes()
);

CREATE TABLE message_text (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    headers    TEXT NOT NULL,                 -- casefolded
    body       TEXT NOT NULL                  -- casefolded
);

CREATE TABLE mailbox_messages (
    mailbox_id      INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid             INTEGER NOT NULL,
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    flags           TEXT NOT NULL DEFAULT '',
    seen            INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    modseq          INTEGER NOT NULL,
    internaldate    INTEGER NOT NULL,         -- unix seconds
    internaldate_tz INTEGER NOT NULL,         -- UTC offset in minutes, as received
    savedate        INTEGER NOT NULL,         -- unix seconds
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX mailbox_messages_modseq ON mailbox_messages (mailbox_id, modseq);
CREATE INDEX mailbox_messages_message ON mailbox_messages (message_id);
CREATE INDEX mailbox_messages_deleted ON mailbox_messages (mailbox_id, uid) WHERE deleted = 1;

CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
"""

# Index i holds the script that takes the schema from version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (_V1,)


def configure(conn: sqlite3.Connection) -> None:
    """Per-connection settings."""
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: in WAL mode NORMAL only survives a process crash, not a power cut;
    # group commit amortizes the extra fsync over every write in a batch.
    conn.execute("PRAGMA synchronous = FULL")


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION (call on the writer connection)."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"SQLite refused WAL mode (got {mode!r})")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {version} is newer than this mailbag ({SCHEMA_VERSION})"
        )
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(_MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    # executescript() would commit on its own; splitting keeps each migration
    # in one transaction. The DDL holds no ";" inside literals.
    return [s.strip() for s in script.split(";") if s.strip()]
