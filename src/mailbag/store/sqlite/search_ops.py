"""The text index behind SEARCH BODY / TEXT / FROM / TO / CC / BCC / SUBJECT
(RFC 9051 §6.4.4: case-insensitive substring match) in the SQLite backend.

``message_text`` holds each message's decoded search text, casefolded at
ingest (mime/text.py). ``message_fts`` is an FTS5 index over it (trigram
tokenizer, external content: the text is stored once, in ``message_text``),
one row per message row, keyed by message id; schema.py creates it.

A needle of three or more characters is asked of the index as one phrase:
with ``detail=full`` the index keeps where each trigram is, so the phrase of
the needle's trigrams at consecutive positions of one column is exactly "the
column contains the needle" and no message text is read (a frequent needle
found in every message of a 100,000-message mailbox costs the index and the
join with the mailbox, not 70 MB of ``instr()``). The index answers exactly
only when it sees the same characters as Python, which is not always so:

* the trigram tokenizer reads U+FFFD, U+FFFE and U+FFFF as one character
  (U+FFFD) and stops a text at its first NUL; a needle holding any of these
  is looked up loosely and checked with ``instr()`` (a NUL cannot be put in
  an FTS5 query at all: such a needle scans the mailbox);
* a long needle's phrase costs more than it saves (the phrase matcher walks
  every trigram's positions: ~25 ms at 100 characters, ~650 ms at 1,000), so
  above PHRASE_MAX characters its first and last PHRASE_MAX characters are
  looked up (both phrases, possibly in different columns: candidates only)
  and each candidate is checked with ``instr()``.

Each column is its own phrase space (positions do not run on from one column
to the next), so TEXT (``headers`` and ``body``) never matches a needle that
only exists across the end of the headers and the start of the body, exactly
as ``instr()`` on each column does not.

Shorter needles have no trigram, and a small mailbox is cheaper to scan than
a server-wide candidate list is to filter: both read the mailbox's texts.

Case: the text is casefolded at ingest and the needle here with the same
``str.casefold``, so the tokenizer runs case-sensitive (no folding of its
own, which is simpler than Unicode's and knows no ß -> ss).

Deferred indexing: the server's writer may commit a message with only its id
in ``fts_pending`` and index such messages later, many at once (writer.py);
a search through the index also scans the pending ones, so a committed
message is always found. ``unindex_messages`` strikes a pending one instead.

Results come back as one JSON array per query (``json_group_array``):
turning 100,000 one-column rows into Python tuples costs four times more.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence

from mailbag.store.api import TextWhere

# Below this many messages a mailbox is scanned rather than looked up: the
# index answers for the whole server, and a frequent needle would have many
# candidates in other mailboxes.
SCAN_BELOW = 2000
# The longest needle asked of the index as one phrase; a longer one is looked
# up by its first and last PHRASE_MAX characters and checked (docstring).
PHRASE_MAX = 32
# Characters the trigram tokenizer reads otherwise than Python (docstring):
# a needle holding one is only narrowed by the index, then checked.
_CONFLATED = frozenset("\ufffd\ufffe\uffff")

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


def index_pending(conn: sqlite3.Connection, limit: int | None = None) -> int:
    """Index the deferred messages, oldest first, at most *limit* of them
    (all when None); returns how many left the list."""
    first = ("SELECT message_id FROM fts_pending ORDER BY message_id LIMIT ?")
    n = -1 if limit is None else limit       # SQLite: a negative LIMIT is none
    conn.execute(
        f"INSERT INTO message_fts (rowid, {TEXT_COLUMNS})"
        f" SELECT message_id, {TEXT_COLUMNS} FROM message_text"
        f" WHERE message_id IN ({first}) ORDER BY message_id", (n,)
    )
    return int(conn.execute(f"DELETE FROM fts_pending WHERE message_id IN ({first})",
                            (n,)).rowcount)


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


def _phrase(text: str) -> str:
    # A quoted FTS5 string: no character of the needle is query syntax.
    return '"' + text.replace('"', '""') + '"'


def match_query(where: TextWhere, key: str) -> str:
    """The FTS5 MATCH expression for ``key`` (casefolded, 3 or more
    characters, no NUL) within the searched columns: the needle as one
    phrase, or for a long one its first and last PHRASE_MAX characters."""
    if len(key) <= PHRASE_MAX:
        query = _phrase(key)
    else:
        query = f"({_phrase(key[:PHRASE_MAX])} AND {_phrase(key[-PHRASE_MAX:])})"
    return f"{{{_COLUMNS[where]}}} : {query}"


def exact_match(key: str) -> bool:
    """Whether ``match_query(where, key)`` matches exactly the messages whose
    column holds ``key``, so that no candidate needs checking."""
    return 3 <= len(key) <= PHRASE_MAX and "\x00" not in key and _CONFLATED.isdisjoint(key)


def search_text(
    conn: sqlite3.Connection, mailbox_id: int, where: TextWhere, needle: str
) -> set[int]:
    """UIDs in the mailbox whose ``where`` text contains ``needle``,
    case-insensitively (Python's casefold, on both sides)."""
    key = needle.casefold()
    condition = _CONDITIONS[where]
    if len(key) < 3 or "\x00" in key or _size(conn, mailbox_id) < SCAN_BELOW:
        return _uids(conn, (
            "SELECT json_group_array(mm.uid) FROM mailbox_messages mm"
            " JOIN message_text t ON t.message_id = mm.message_id"
            f" WHERE mm.mailbox_id = ?2 AND {condition}"), (key, mailbox_id))
    # Messages committed but not indexed yet (fts_pending): a few, scanned.
    hits = _uids(conn, (
        "SELECT json_group_array(mm.uid) FROM fts_pending p"
        " CROSS JOIN mailbox_messages mm ON mm.message_id = p.message_id"
        " CROSS JOIN message_text t ON t.message_id = p.message_id"
        f" WHERE mm.mailbox_id = ?2 AND {condition}"), (key, mailbox_id))
    if exact_match(key):
        # The phrase is the substring match: no text is read.
        return hits | _uids(conn, (
            "SELECT json_group_array(mm.uid) FROM message_fts f"
            " CROSS JOIN mailbox_messages mm ON mm.message_id = f.rowid"
            " WHERE message_fts MATCH ?1 AND mm.mailbox_id = ?2"),
            (match_query(where, key), mailbox_id))
    # CROSS JOIN fixes the order: index, then the mailbox, then the text.
    return hits | _uids(conn, (
        "SELECT json_group_array(mm.uid) FROM message_fts f"
        " CROSS JOIN mailbox_messages mm ON mm.message_id = f.rowid"
        " CROSS JOIN message_text t ON t.message_id = f.rowid"
        f" WHERE message_fts MATCH ?3 AND mm.mailbox_id = ?2 AND {condition}"),
        (key, mailbox_id, match_query(where, key)))


def _uids(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> set[int]:
    # One JSON array, parsed in C: for 100,000 UIDs ~6 ms, against ~12 ms for
    # splitting a group_concat() and ~25 ms for as many one-column rows.
    return set(json.loads(conn.execute(sql, params).fetchone()[0]))


def _size(conn: sqlite3.Connection, mailbox_id: int) -> int:
    row = conn.execute("SELECT messages FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone()
    return int(row[0]) if row else 0
