"""The SQLite schema of the embedded backend and its migrations
(``PRAGMA user_version`` holds the schema version).

Messages are content rows shared by every mailbox that holds them (COPY and
duplicate deliveries add a ``mailbox_messages`` row, not a message); a message
row lives as long as some ``mailbox_messages`` row references it. Mailbox
counters (messages, unseen, deleted, size) are kept up to date by the writer
so STATUS and SELECT never count rows.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence

from mailbag.mime import facts as _facts
from mailbag.mime.message import ParsedMessage
from mailbag.mime.parse import date_has_glued_zone
from mailbag.mime.sortkeys import SortKeys

log = logging.getLogger("mailbag.store")

SCHEMA_VERSION = 9

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
    facts     BLOB NOT NULL,                  -- mime.facts.dump(rendered=False)
    -- What FETCH ENVELOPE/BODY/BODYSTRUCTURE send, read without decoding facts.
    envelope      BLOB NOT NULL,
    body          BLOB NOT NULL,
    bodystructure BLOB NOT NULL,
    -- The zstd-compressed message when it is small (store.py INLINE_MAX):
    -- it is then made durable by the same commit as its row, with no file
    -- and no fsync of its own. NULL: the blob file blobs/ab/cdef... holds it.
    data          BLOB
);

CREATE TABLE message_text (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    headers    TEXT NOT NULL,                 -- casefolded
    body       TEXT NOT NULL,                 -- casefolded
    -- mime.text.field_texts: the fields SEARCH FROM/TO/CC/BCC/SUBJECT scan
    f_from     TEXT NOT NULL DEFAULT '',
    f_to       TEXT NOT NULL DEFAULT '',
    f_cc       TEXT NOT NULL DEFAULT '',
    f_bcc      TEXT NOT NULL DEFAULT '',
    f_subject  TEXT NOT NULL DEFAULT ''
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

# Credentials (docs/auth.md): SCRAM-SHA-256 secrets in RFC 5803 form, a TOTP
# secret (RFC 6238, base32; it must be readable to check codes) with the last
# time step used (no replay), the second-factor flag, and per-device app
# passwords (argon2id; ``selector`` is a short hash of the secret so a login
# checks one candidate, not every app password of the account).
_V2 = """
ALTER TABLE accounts ADD COLUMN scram_sha256 TEXT;
ALTER TABLE accounts ADD COLUMN totp_secret TEXT;
ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN require_second_factor INTEGER NOT NULL DEFAULT 0;

CREATE TABLE app_passwords (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    label       TEXT NOT NULL,
    selector    TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created     INTEGER NOT NULL,
    last_used   INTEGER,
    last_ip     TEXT,
    revoked     INTEGER
);
CREATE UNIQUE INDEX app_passwords_label ON app_passwords (account_id, label)
    WHERE revoked IS NULL;
CREATE INDEX app_passwords_selector ON app_passwords (account_id, selector)
    WHERE revoked IS NULL;
"""

# Aliases for delivery (LMTP, mailbag deliver; docs/postfix.md): an address
# or a bare local part, stored lower-cased, naming the receiving account.
_V3 = """
CREATE TABLE aliases (
    address    TEXT PRIMARY KEY COLLATE NOCASE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX aliases_account ON aliases (account_id);
"""

# The SEARCH text index (store/sqlite/search_ops.py): FTS5 trigrams over
# message_text, which keeps the text (external content), keyed by message id.
# case_sensitive 1: the text is already casefolded (Python's full casefold).
# detail=column: candidates only (instr() checks them), at a fraction of the
# size of positions. The backfill indexes every existing row.
_V4 = """
CREATE VIRTUAL TABLE message_fts USING fts5(
    headers, body, f_from, f_to, f_cc, f_bcc, f_subject,
    content='message_text', content_rowid='message_id',
    tokenize='trigram case_sensitive 1', detail='column'
);
INSERT INTO message_fts (message_fts) VALUES ('rebuild');
"""

# fts_pending: messages committed but not yet in message_fts; the writer
# indexes them in batches (writer.py says why) and SEARCH scans these few
# rows meanwhile. directory_serial: moves whenever anything an LMTP recipient
# look-up reads changes (accounts, aliases, mailbox names), from any process,
# so the server can keep look-ups and check them with one tiny read
# (SqliteStore.find_recipient).
_V5 = """
CREATE TABLE fts_pending (message_id INTEGER PRIMARY KEY);
CREATE TABLE directory_serial (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO directory_serial (id, n) VALUES (1, 0);
CREATE TRIGGER dir_accounts_ins AFTER INSERT ON accounts
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_accounts_upd AFTER UPDATE ON accounts
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_accounts_del AFTER DELETE ON accounts
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_aliases_ins AFTER INSERT ON aliases
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_aliases_upd AFTER UPDATE ON aliases
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_aliases_del AFTER DELETE ON aliases
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_mailboxes_ins AFTER INSERT ON mailboxes
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_mailboxes_upd AFTER UPDATE OF name, noselect, account_id ON mailboxes
BEGIN UPDATE directory_serial SET n = n + 1; END;
CREATE TRIGGER dir_mailboxes_del AFTER DELETE ON mailboxes
BEGIN UPDATE directory_serial SET n = n + 1; END;
"""

# The text index with positions (detail=full): a needle is looked up as a
# phrase, which is the substring match itself, so SEARCH reads no message
# text to check candidates (search_ops.py). About twice the size of the
# detail=column index (~2.2 MB per 1,000 messages of the bench corpus, +100 MB
# at 100,000). The rebuild indexes every row, the pending ones too, so the
# pending list is emptied with it (indexing one twice would corrupt it).
_V6 = """
DROP TABLE message_fts;
CREATE VIRTUAL TABLE message_fts USING fts5(
    headers, body, f_from, f_to, f_cc, f_bcc, f_subject,
    content='message_text', content_rowid='message_id',
    tokenize='trigram case_sensitive 1', detail='full'
);
INSERT INTO message_fts (message_fts) VALUES ('rebuild');
DELETE FROM fts_pending;
"""

# Expunge history with an age, so that it can be pruned (queries.py
# changes_since, SqliteStore.prune_expunged): ``at`` is when the message was
# expunged (existing records count from the migration), ``vanished_floor``
# the highest modseq of a pruned record; a client asking for changes since
# an older modseq is told every UID that is gone (RFC 7162 §3.2.5.2 allows
# the server to include UIDs the client never saw).
_V7 = """
ALTER TABLE expunged ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
UPDATE expunged SET at = CAST(strftime('%s', 'now') AS INTEGER);
ALTER TABLE mailboxes ADD COLUMN vanished_floor INTEGER NOT NULL DEFAULT 0;
"""

# SORT and THREAD keys per message (mime/sortkeys.py, RFC 5256/5957), written
# at ingest: a SORT of a big mailbox reads this narrow table joined to
# mailbox_messages and lets SQLite order it, instead of decoding every
# message's facts. The strings are already i;ascii-casemapped, so BINARY
# (UTF-8 byte order = code point order) compares them as Python does.
# ``date`` and ``size`` repeat messages.sent_date/size so the sort never
# reads the wide messages rows. Messages never change, so neither do their
# keys; the backfill (_backfill_sort_keys) computes them from stored facts.
_V8 = """
CREATE TABLE sort_keys (
    message_id   INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    date         INTEGER,                  -- messages.sent_date
    size         INTEGER NOT NULL,
    subject      TEXT NOT NULL,
    from_addr    TEXT NOT NULL,
    to_addr      TEXT NOT NULL,
    cc_addr      TEXT NOT NULL,
    from_display TEXT NOT NULL,
    to_display   TEXT NOT NULL,
    msgid        TEXT,
    refs         TEXT NOT NULL,
    reply        INTEGER NOT NULL
)
"""

# Since version 9 a Date: whose zone is glued to the time of day
# ("00:01+0000", no RFC 5322 §3.3 date-time) is no sent date (mime/parse.py):
# RFC 5256 §2.2 sorts and threads such a message by its INTERNALDATE. Messages
# stored before were given the date Python's parser guessed; the V9 step
# (_forget_glued_dates, no DDL) clears it from their facts and sent_date and
# recomputes their sort keys. It reads the Date from the stored ENVELOPE and
# touches only the messages it finds.
_V9 = ""

# Index i holds the script that takes the schema from version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)

SORT_KEY_COLS = ("message_id, date, size, subject, from_addr, to_addr, cc_addr,"
                 " from_display, to_display, msgid, refs, reply")


def sort_key_row(message_id: int, sent_date: int | None, size: int,
                 k: SortKeys) -> tuple[object, ...]:
    """A sort_keys row in SORT_KEY_COLS order."""
    return (message_id, sent_date, size, k.subject, k.from_addr, k.to_addr, k.cc_addr,
            k.from_display, k.to_display, k.msgid, k.refs, int(k.reply))


def _backfill_sort_keys(conn: sqlite3.Connection, ids: Sequence[int] | None = None) -> None:
    """V8: keys of the messages stored before it, from their facts (about
    3.5 s per 100,000 messages, once: 690 ms for 20,000). Unreadable facts get empty keys
    rather than failing the upgrade. ``ids``: only these messages (V9)."""
    rows = []
    if ids is None:
        cur = conn.execute("SELECT id, sent_date, size, facts FROM messages")
    else:
        cur = conn.execute("SELECT id, sent_date, size, facts FROM messages"
                           " WHERE id IN (SELECT value FROM json_each(?))",
                           ("[" + ",".join(str(int(i)) for i in ids) + "]",))
    for message_id, sent, size, facts in cur:
        try:
            keys = SortKeys.of(ParsedMessage.from_bytes(facts))
        except ValueError:
            keys = SortKeys("", "", "", "", "", "", None, "", False)
        rows.append(sort_key_row(message_id, sent, size, keys))
        if len(rows) >= 1000:
            _insert_sort_keys(conn, rows)
            rows = []
    _insert_sort_keys(conn, rows)


def _insert_sort_keys(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    conn.executemany(f"INSERT INTO sort_keys ({SORT_KEY_COLS})"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _envelope_date(envelope: bytes) -> bytes | None:
    """The date, first member of a rendered ENVELOPE: NIL, a quoted string
    or a literal (mime/render.py)."""
    if envelope.startswith(b"(NIL"):
        return None
    if envelope.startswith(b'("'):
        out = bytearray()
        i = 2
        while i < len(envelope) and envelope[i] != 0x22:
            if envelope[i] == 0x5C:          # backslash: the next byte as it is
                i += 1
            if i < len(envelope):
                out.append(envelope[i])
            i += 1
        return bytes(out)
    if envelope.startswith(b"({"):
        head, _, rest = envelope[2:].partition(b"}\r\n")
        try:
            n = int(head.rstrip(b"+"))
        except ValueError:
            return None
        return rest[:n]
    return None


def _forget_glued_dates(conn: sqlite3.Connection) -> None:
    """V9: see _V9. Unreadable facts are left as they are."""
    found = []
    for message_id, envelope, data in conn.execute(
            "SELECT id, envelope, facts FROM messages WHERE sent_date IS NOT NULL"):
        raw = _envelope_date(bytes(envelope))
        if raw is None or not date_has_glued_zone(raw.decode("latin-1")):
            continue
        try:
            parsed = ParsedMessage.from_bytes(data)
        except ValueError:
            continue
        found.append((_facts.dump(dataclasses.replace(parsed, sent_date=None), rendered=False),
                      message_id))
    conn.executemany("UPDATE messages SET sent_date = NULL, facts = ? WHERE id = ?", found)
    ids = [message_id for _f, message_id in found]
    conn.executemany("DELETE FROM sort_keys WHERE message_id = ?", [(i,) for i in ids])
    if ids:
        _backfill_sort_keys(conn, ids)


# Python steps run after the script of the same index, in its transaction.
_BACKFILLS: dict[int, Callable[[sqlite3.Connection], None]] = {
    7: _backfill_sort_keys, 8: _forget_glued_dates}


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
        if version:
            # Some steps rebuild an index over every message (V6): say why
            # the first start after an upgrade takes a while.
            log.info("schema-migrating from=%d to=%d", step, step + 1)
        t0 = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(_MIGRATIONS[step]):
                conn.execute(statement)
            if step in _BACKFILLS:
                _BACKFILLS[step](conn)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if version:
            log.info("schema-migrated from=%d to=%d ms=%d", step, step + 1,
                     (time.monotonic() - t0) * 1000)


def _statements(script: str) -> list[str]:
    # executescript() would commit on its own; splitting keeps each migration
    # in one transaction. The DDL holds no ";" inside literals; a trigger
    # body holds some, so pieces are joined until SQLite calls them complete.
    out: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip().rstrip(";").strip())
            buf = ""
    if buf.strip(" \n;"):
        out.append(buf.strip().rstrip(";").strip())
    return out
