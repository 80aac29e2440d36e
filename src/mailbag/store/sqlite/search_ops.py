"""The text index behind SEARCH BODY / TEXT / FROM / TO / CC / BCC / SUBJECT
(RFC 9051 §6.4.4: case-insensitive substring match) in the SQLite backend.

``message_text`` holds each message's decoded search text, casefolded at
ingest (mime/text.py). ``message_fts`` is an FTS5 index over it (trigram
tokenizer, external content: the text is stored once, in ``message_text``),
one row per message row, keyed by message id; schema.py creates it.

A search with a needle of three or more characters asks the index for the
messages containing every trigram of the needle, keeps those in the mailbox,
and then checks the real substring on each candidate with ``instr()``: the
index only narrows (``detail=column`` keeps which column holds a trigram, not
where, so a message holding the trigrams apart is a candidate but no match).
Shorter needles have no trigram, and a small mailbox is cheaper to scan than
a server-wide candidate list is to filter: both read the mailbox's texts.

Case: the text is casefolded at ingest and the needle here with the same
``str.casefold``, so the tokenizer runs case-sensitive (no folding of its
own, which is simpler than Unicode's and knows no ß -> ss).

Deferred indexing: the server's writer may commit a message with only its id
in ``fts_pending`` and index such messages later, many at once (writer.py);
a search through the index also scans the pending ones, so a committed
message is always found. ``unindex_messages`` strikes a pending one instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from mailbag.store.api import TextWhere

# Below this many messages a mailbox is scanned rather than looked up: the
# index answers for the whole server, and a frequent needle would have many
# candidates in other mailboxes.
SCAN_BELOW = 2000
# Trigrams of a long needle put in the index query: a handful spread over the
# needle narrows as well as all of them, and each costs a doclist merge.
MAX_TRIGRAMS = 8

_CONDITIONS: dict[str, str] = {
    "BODY": "instr(t.body, ?1) > 0",
    "TEXT": "(instr(t.headers, ?1) > 0 OR instr(t.body, ?1) > 0)",
    "FROM": "instr(t.f_from, ?1) > 0",
    "TO": "instr(t.f_to, ?1) > 0",
    "CC": "instr(t.f_cc, ?1) > 0",
    "BCC": "instr(t.f_bcc, ?1) > 0",
    "SUBJECT": "instr(t.f_subject, ?1) > 0",
}

_COLUMNS: dict[str, str] = {
    "BODY": "body",
    "TEXT": "headers body",
    "FROM": "f_from",
    "TO": "f_to",
    "CC": "f_cc",
    "BCC": "f_bcc",
    "SUBJECT": "f_subject",
}

# The message_text columns the index covers, in its column order.
TEXT_COLUMNS = "headers, body, f_from, f_to, f_cc, f_bcc, f_subject"


def index_messages(
    conn: sqlite3.Connection, rows: Iterable[tuple[int, Sequence[str]]]
) -> None:
    """Index many (message id, texts) at once: the writer does this once per
    transaction, since FTS5 writes its pending terms out at every savepoint."""
    conn.executemany(
        f"INSERT INTO message_fts (rowid, {TEXT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(message_id, *texts) for message_id, texts in rows],
    )


def defer_messages(conn: sqlite3.Connection, message_ids: Iterable[int]) -> None:
    """Note committed messages for a later ``index_pending`` (the server's
    writer batches the index this way; SEARCH scans them meanwhile)."""
    conn.executemany("INSERT OR IGNORE INTO fts_pending (message_id) VALUES (?)",
                     [(m,) for m in message_ids])


def index_pending(conn: sqlite3.Connection) -> int:
    """Index every deferred message in one go; returns how many."""
    conn.execute(
        f"INSERT INTO message_fts (rowid, {TEXT_COLUMNS})"
        f" SELECT message_id, {TEXT_COLUMNS} FROM message_text"
        " WHERE message_id IN (SELECT message_id FROM fts_pending) ORDER BY message_id"
    )
    return int(conn.execute("DELETE FROM fts_pending").rowcount)


def unindex_messages(conn: sqlite3.Connection, message_ids: Iterable[int]) -> None:
    """Remove messages from the index; call before their message_text rows
    go (an external-content index is told the exact text it indexed). A
    deferred one was never indexed: it only leaves the pending list."""
    message_ids = [m for m in message_ids if not conn.execute(
        "DELETE FROM fts_pending WHERE message_id = ?", (m,)).rowcount]
    conn.executemany(
        f"INSERT INTO message_fts (message_fts, rowid, {TEXT_COLUMNS})"
        f" SELECT 'delete', message_id, {TEXT_COLUMNS} FROM message_text WHERE message_id = ?",
        [(m,) for m in message_ids],
    )


def trigrams(key: str) -> list[str]:
    """Distinct trigrams of ``key`` (at least 3 characters) covering all of
    it: every third one and the last, at most MAX_TRIGRAMS, evenly spread."""
    starts = list(range(0, len(key) - 2, 3))
    if starts[-1] != len(key) - 3:
        starts.append(len(key) - 3)
    if len(starts) > MAX_TRIGRAMS:
        step = (len(starts) - 1) / (MAX_TRIGRAMS - 1)
        starts = [starts[round(i * step)] for i in range(MAX_TRIGRAMS)]
    out: list[str] = []
    for s in starts:
        gram = key[s:s + 3]
        if gram not in out:
            out.append(gram)
    return out


def match_query(where: TextWhere, key: str) -> str:
    """The FTS5 MATCH expression: every trigram, as a quoted string (so no
    character of the needle is query syntax), within the searched columns."""
    grams = " AND ".join('"' + g.replace('"', '""') + '"' for g in trigrams(key))
    return f"{{{_COLUMNS[where]}}} : ({grams})"


def search_text(
    conn: sqlite3.Connection, mailbox_id: int, where: TextWhere, needle: str
) -> set[int]:
    """UIDs in the mailbox whose ``where`` text contains ``needle``,
    case-insensitively (Python's casefold, on both sides)."""
    key = needle.casefold()
    condition = _CONDITIONS[where]
    if len(key) < 3 or _size(conn, mailbox_id) < SCAN_BELOW:
        cur = conn.execute(
            "SELECT mm.uid FROM mailbox_messages mm"
            " JOIN message_text t ON t.message_id = mm.message_id"
            f" WHERE mm.mailbox_id = ?2 AND {condition}",
            (key, mailbox_id),
        )
        return {r[0] for r in cur}
    # Messages committed but not indexed yet (fts_pending): a few, scanned.
    hits = {r[0] for r in conn.execute(
        "SELECT mm.uid FROM fts_pending p"
        " CROSS JOIN mailbox_messages mm ON mm.message_id = p.message_id"
        " CROSS JOIN message_text t ON t.message_id = p.message_id"
        f" WHERE mm.mailbox_id = ?2 AND {condition}",
        (key, mailbox_id),
    )}
    if len(key) == 3:
        # One trigram present in the column is the substring itself.
        cur = conn.execute(
            "SELECT mm.uid FROM message_fts f"
            " CROSS JOIN mailbox_messages mm ON mm.message_id = f.rowid"
            " WHERE message_fts MATCH ?1 AND mm.mailbox_id = ?2",
            (match_query(where, key), mailbox_id),
        )
        return hits | {r[0] for r in cur}
    # CROSS JOIN fixes the order: index, then the mailbox, then the text.
    cur = conn.execute(
        "SELECT mm.uid FROM message_fts f"
        " CROSS JOIN mailbox_messages mm ON mm.message_id = f.rowid"
        " CROSS JOIN message_text t ON t.message_id = f.rowid"
        f" WHERE message_fts MATCH ?3 AND mm.mailbox_id = ?2 AND {condition}",
        (key, mailbox_id, match_query(where, key)),
    )
    return hits | {r[0] for r in cur}


def _size(conn: sqlite3.Connection, mailbox_id: int) -> int:
    row = conn.execute("SELECT messages FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    return int(row[0]) if row else 0
