"""SORT and THREAD from the keys the store keeps (mime/sortkeys.py, the
sort_keys table, imap/sort_cache.py) against the straightforward computation
from each message's facts (imap.sort.sort_from_records,
imap.thread.load_from_records): RFC 5256 §3, RFC 5957 §3, on a varied
mailbox, before and after messages are added, expunged and re-flagged, and
after the schema v8 backfill."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import random
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbag.imap import sort_cache
from mailbag.imap import thread as threading
from mailbag.imap.search import SearchContext
from mailbag.imap.sort import CRITERIA, sort, sort_from_records
from mailbag.mime import facts, parse
from mailbag.mime.message import ParsedMessage
from mailbag.store.api import AppendItem
from mailbag.store.sqlite import queries, schema
from mailbag.store.sqlite.store import SqliteStore


def _b(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


SUBJECTS = ["hello", "Hello", "Re: hello", "RE: [list] Hello", "Fwd: hello", "hello (fwd)",
            "[fwd: hello]", "", "  ", "Re: Re: re: topic", "topic", _b("Grüße"),
            "Re: " + _b("Grüße"), _b("ประชุม"), "zebra", "Zebra", "äpfel", "Äpfel",
            "re:", "Subject with    spaces", "[PATCH 1/2] fix"]
FROMS = ["alice@example.org", "Alice <alice@example.org>", "\"Bob B\" <bob@example.org>",
         f"{_b('Søren Ærø')} <soren@example.dk>", "undisclosed: ;", "team: a@x.org, b@y.org;",
         "", "<bare@example.org>", "ALICE@example.org", "(comment) carol@example.org",
         "Zed <a@example.org>", "zed <b@example.org>", "=?bogus?q?x?= <x@example.org>"]
DATES = ["Fri, 22 Feb 2008 00:00:00 +0200", "Thu, 21 Feb 2008 22:00:00 +0000",
         "Fri, 22 Feb 2008 00:00:00 -0500", "22 Feb 2008 03:00 +0100", "not a date",
         None, None, "Sat, 01 Jan 2000 00:00:00 GMT", "Fri, 22 Feb 2008 00:00:00 +0200",
         # No RFC 5322 date-time (a zone glued to the time): the INTERNALDATE
         # stands in (RFC 5256 §2.2); since schema v9.
         "22 Feb 2008 00:01+0000", "Fri, 22 Feb 2008 00:00:00-0500"]
BASE = datetime(2008, 2, 20, tzinfo=UTC)


def make_message(rng: random.Random, n: int) -> tuple[bytes, datetime]:
    head = [f"X-N: {n}"]
    subject = rng.choice(SUBJECTS)
    if rng.random() < 0.9:
        head.append(f"Subject: {subject}")
    sender = rng.choice(FROMS)
    if sender or rng.random() < 0.5:
        head.append(f"From: {sender}")
    head.append(f"To: {rng.choice(FROMS)}")
    if rng.random() < 0.5:
        head.append(f"Cc: {rng.choice(FROMS)}")
    date = rng.choice(DATES)
    if date is not None:
        head.append(f"Date: {date}")
    # A few message ids shared, parents that exist or not, loops.
    if rng.random() < 0.9:
        head.append(f"Message-ID: <m{rng.randrange(n + 5)}@x>")
    if rng.random() < 0.4:
        refs = " ".join(f"<m{rng.randrange(n + 5)}@x>" for _ in range(rng.randrange(1, 4)))
        head.append(f"References: {refs}")
    elif rng.random() < 0.3:
        head.append(f"In-Reply-To: <m{rng.randrange(n + 5)}@x> (sent by someone)")
    body = "x" * rng.choice([10, 10, 200, 3000])     # equal sizes: the tiebreak matters
    when = BASE + timedelta(hours=rng.randrange(6))  # equal arrival times too
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode(), when


CRITERIA_SETS: list[list[tuple[str, bool]]] = [
    *[[(c, r)] for c in sorted(CRITERIA) for r in (False, True)],
    [("SUBJECT", False), ("DATE", True)],
    [("FROM", True), ("SIZE", False), ("ARRIVAL", True)],
    [("DISPLAYFROM", False), ("DISPLAYTO", True), ("CC", False)],
    [],
]


class Box:
    def __init__(self, store: SqliteStore, mailbox_id: int, uidvalidity: int) -> None:
        self.store, self.mailbox_id, self.uidvalidity = store, mailbox_id, uidvalidity
        self.view: list[int] = []          # what a session knows (may hold gone UIDs)

    def ctx(self) -> SearchContext:
        return SearchContext(self.mailbox_id, self.view, {u: frozenset() for u in self.view},
                             frozenset(), None, datetime.now(UTC), self.uidvalidity)

    async def check(self, rng: random.Random) -> None:
        subsets = [self.view, sorted(rng.sample(self.view, len(self.view) // 2)),
                   sorted(rng.sample(self.view, 7)), self.view[::-1] + self.view[:3]]
        for criteria in CRITERIA_SETS:
            for uids in subsets:
                ctx = self.ctx()
                expected = await sort_from_records(self.store, ctx, criteria, uids)
                assert await sort(self.store, ctx, criteria, uids) == expected, criteria
                # The second time may come from memory: it must not differ.
                assert await sort(self.store, ctx, criteria, uids) == expected, criteria
        for algorithm in threading.ALGORITHMS:
            # The whole view first and last: a tree is remembered for one
            # set of UIDs, so the first meets the last one of the check before.
            for uids in [*subsets[:3], self.view]:
                messages = await threading.load_from_records(self.store, self.mailbox_id, uids)
                assert await threading.load(self.store, self.mailbox_id, uids) == messages
                roots = (threading.references(messages) if algorithm == "REFERENCES"
                         else threading.ordered_subject(messages))
                expected_t = threading.render(roots, lambda u: u)
                for _ in range(2):
                    got = await threading.threads(self.store, self.mailbox_id, self.uidvalidity,
                                                  algorithm, uids)
                    assert threading.render(got, lambda u: u) == expected_t, algorithm


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Exercise the memory of orders and both query shapes on a small mailbox.
    monkeypatch.setattr(sort_cache, "MIN_UIDS", 20)
    # Room for every criteria set, so each check after a change meets the
    # orders the check before it remembered.
    monkeypatch.setattr(sort_cache, "MAX_ENTRIES", 200)
    monkeypatch.setattr(queries, "SORT_NAMED_MAX", 50)


async def _box(tmp_path: Path) -> tuple[SqliteStore, Box]:
    store = SqliteStore(tmp_path / "data")
    await store.open()
    account = await store.create_account("sorter", "x")
    info = await store.create_mailbox(account.id, "Big")
    return store, Box(store, info.id, info.uidvalidity)


async def _append(box: Box, rng: random.Random, count: int) -> None:
    items = []
    for _ in range(count):
        data, when = make_message(rng, len(box.view) + len(items))
        items.append(AppendItem(data, internaldate=when))
    result = await box.store.append(box.mailbox_id, items)
    box.view.extend(result.uids)


async def _expunge(box: Box, uids: Sequence[int]) -> None:
    await box.store.store_flags(box.mailbox_id, list(uids), "add", frozenset({"\\Deleted"}))
    await box.store.expunge(box.mailbox_id, list(uids))


async def test_stored_keys_give_the_same_answers(tmp_path: Path, small_limits: None) -> None:
    rng = random.Random(5256)
    store, box = await _box(tmp_path)
    try:
        await _append(box, rng, 160)
        await box.check(rng)
        # Added: the remembered orders do not cover the new messages.
        await _append(box, rng, 30)
        await box.check(rng)
        # Re-flagged: no key changes, answers stay.
        await box.store.store_flags(box.mailbox_id, box.view[::3], "add",
                                    frozenset({"\\Seen", "$Work"}))
        await box.check(rng)
        # Expunged behind the session's back: the session still lists the
        # UIDs, which now sort with empty keys (and leave THREAD).
        await _expunge(box, box.view[5:40:4])
        await box.check(rng)
        # ... and once the session has caught up.
        box.view = [m.uid for m in await store.message_list(box.mailbox_id)]
        await box.check(rng)
    finally:
        await store.close()


async def test_backfill_of_an_existing_database(tmp_path: Path, small_limits: None) -> None:
    """Schema v8 on a v7 database: keys computed from the stored facts."""
    rng = random.Random(5957)
    store, box = await _box(tmp_path)
    await _append(box, rng, 80)
    await store.close()
    conn = sqlite3.connect(store.db_path)
    written = conn.execute("SELECT * FROM sort_keys ORDER BY message_id").fetchall()
    assert len(written) == 80
    conn.execute("DROP TABLE sort_keys")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    await _upgraded(tmp_path, box, rng, written)


async def _upgraded(tmp_path: Path, box: Box, rng: random.Random,
                    keys: list[Any], messages: list[Any] | None = None) -> None:
    """Open the store again (which migrates it) and check that its sort keys
    (and, given, its messages' sent dates and facts) are *keys* (*messages*)
    and that it still sorts as the reference does."""
    store = SqliteStore(tmp_path / "data")
    await store.open()
    box.store = store
    try:
        conn = sqlite3.connect(store.db_path)
        assert conn.execute("SELECT * FROM sort_keys ORDER BY message_id").fetchall() == keys
        if messages is not None:
            assert conn.execute(
                "SELECT id, sent_date, facts FROM messages ORDER BY id").fetchall() == messages
        conn.close()
        await box.check(rng)
    finally:
        await store.close()


async def test_v9_forgets_dates_with_a_glued_zone(tmp_path: Path, small_limits: None) -> None:
    """Schema v9 on a v8 database whose messages with a Date like
    "22 Feb 2008 00:01+0000" kept the date Python's parser guessed: their
    sent date, facts and sort keys become what ingest now gives them."""
    rng = random.Random(2256)
    store, box = await _box(tmp_path)
    await _append(box, rng, 80)
    await store.close()
    conn = sqlite3.connect(store.db_path)
    written = conn.execute("SELECT * FROM sort_keys ORDER BY message_id").fetchall()
    facts_now = conn.execute("SELECT id, sent_date, facts FROM messages ORDER BY id").fetchall()
    # Back to what version 8 stored: the guessed date everywhere.
    glued = 0
    for message_id, envelope, data in conn.execute(
            "SELECT id, envelope, facts FROM messages").fetchall():
        date = schema._envelope_date(envelope)
        if date is None or not parse.date_has_glued_zone(date.decode()):
            continue
        glued += 1
        guess = email.utils.parsedate_to_datetime(date.decode())
        guess = guess if guess.tzinfo else guess.replace(tzinfo=UTC)
        old = facts.dump(dataclasses.replace(ParsedMessage.from_bytes(data), sent_date=guess),
                         rendered=False)
        conn.execute("UPDATE messages SET sent_date = ?, facts = ? WHERE id = ?",
                     (int(guess.timestamp()), old, message_id))
        conn.execute("UPDATE sort_keys SET date = ? WHERE message_id = ?",
                     (int(guess.timestamp()), message_id))
    assert glued >= 5
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()
    await _upgraded(tmp_path, box, rng, written, facts_now)


def test_envelope_date() -> None:
    assert schema._envelope_date(b'("a \\\\ \\"b" NIL)') == b'a \\ "b'
    assert schema._envelope_date(b"({3}\r\na\"b NIL)") == b'a"b'
    assert schema._envelope_date(b"(NIL NIL)") is None


async def test_recreated_mailbox_forgets_orders(tmp_path: Path, small_limits: Any) -> None:
    """A mailbox id comes back with a new UIDVALIDITY and UIDs from 1
    (mailbox_ops.create_mailbox over a \\NoSelect name): no old order may
    answer for the new messages."""
    rng = random.Random(3501)
    store, box = await _box(tmp_path)
    try:
        account = await store.get_account("sorter")
        assert account is not None
        await store.create_mailbox(account.id, "Big/child")
        await _append(box, rng, 40)
        await box.check(rng)
        await store.delete_mailbox(account.id, "Big")        # keeps a \NoSelect parent
        info = await store.create_mailbox(account.id, "Big")
        assert info.id == box.mailbox_id and info.uidvalidity != box.uidvalidity
        box.uidvalidity, box.view = info.uidvalidity, []
        await _append(box, rng, 40)
        await box.check(rng)
    finally:
        await store.close()


async def test_flag_search_over_the_session_view() -> None:
    """SEARCH UNSEEN/KEYWORD over the session's lazy flag view (its
    snapshot, selected.py) answers as the view's own look-ups do: messages
    the session knows but the index lost have no flags, messages the index
    has but the session was not told of are not in the view."""
    from mailbag.imap.search import search
    from mailbag.imap.selected import SelectedMailbox
    from mailbag.store.api import MailboxInfo
    from mailbag.store.index import MailboxIndex
    from mailbag.wire.commands import SearchFlag, SearchNot

    rng = random.Random(9051)
    index = MailboxIndex(1, 7)
    choices = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Seen", "$Work"}),
               frozenset({"$work"}), frozenset({"\\Deleted"})]
    index.uids = list(range(1, 301))
    index.flags = [rng.choice(choices) for _ in index.uids]
    index.modseqs = [1] * 300
    info = MailboxInfo(1, 1, "INBOX", None, 7, 301, 1, 300, 0, 0, 0)
    sel = SelectedMailbox(info=info, readonly=False, index=index, uids=list(range(1, 281)))
    gone = set(range(10, 60, 7))                  # expunged since the session was told
    keep = [i for i, u in enumerate(index.uids) if u not in gone]
    index.uids = [index.uids[i] for i in keep]
    index.flags = [index.flags[i] for i in keep]
    index.modseqs = [index.modseqs[i] for i in keep]
    view = sel.flags_map()
    assert view.snapshot() == {u: view[u] for u in sel.uids if u in view}  # type: ignore[attr-defined]
    for key in (SearchFlag("\\Seen", False), SearchFlag("\\SEEN", True),
                SearchFlag("$WORK", True), SearchNot(SearchFlag("\\Deleted", True))):
        ctx = SearchContext(1, sel.uids, view, frozenset(), None, datetime.now(UTC), 7)
        plain = SearchContext(1, sel.uids, {u: view[u] for u in sel.uids if u in view},
                              frozenset(), None, datetime.now(UTC), 7)
        flag = key.key if isinstance(key, SearchNot) else key
        assert isinstance(flag, SearchFlag)
        wanted = flag.present != isinstance(key, SearchNot)
        expected = [u for u in sel.uids
                    if (flag.flag.lower() in {f.lower() for f in view.get(u, ())}) == wanted]
        assert await search(None, ctx, key) == expected, key  # type: ignore[arg-type]
        assert await search(None, plain, key) == expected, key  # type: ignore[arg-type]
