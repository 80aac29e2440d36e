"""SEARCH key evaluation (mailbag.imap.search): RFC 9051 §6.4.4, RFC 7162 MODSEQ,
RFC 5032 OLDER/YOUNGER, RFC 5182 '$', and the cases of Dovecot's imaptest
search-* scripts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbag.imap import search as search_mod
from mailbag.imap.search import (
    SearchContext,
    address_text,
    decode_needle,
    search,
    search_with_modseq,
)
from mailbag.mime.message import Address
from mailbag.wire.commands import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchOr,
    SearchSet,
    SearchSize,
    SearchText,
    SearchWithin,
    SeqRange,
    SequenceSet,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)

# ------------------------------------------------------------------ helpers


def seqset(text: str) -> SequenceSet:
    """'1:3,5,*' -> SequenceSet; '$' -> saved."""
    if text == "$":
        return SequenceSet((), saved=True)

    def num(s: str) -> int | None:
        return None if s == "*" else int(s)

    ranges = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        ranges.append(SeqRange(num(a), num(b) if b else num(a)))
    return SequenceSet(tuple(ranges))


def seq(text: str) -> SearchSet:
    return SearchSet(False, seqset(text))


def uidset(text: str) -> SearchSet:
    return SearchSet(True, seqset(text))


def flag(name: str, present: bool = True) -> SearchFlag:
    return SearchFlag(name, present)


def hdr(name: str, value: str | bytes) -> SearchHeader:
    v = value.encode() if isinstance(value, str) else value
    return SearchHeader(name.upper().encode(), v)


def and_(*keys: SearchKey) -> SearchAnd:
    return SearchAnd(tuple(keys))


NEW = and_(flag("\\Recent"), flag("\\Seen", False))
OLD = flag("\\Recent", False)


class NoIOStore:
    """A store that must not be touched: memory keys never do I/O."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"store.{name} used for an in-memory key")


def ctx_for(
    uids: Sequence[int],
    flags: dict[int, frozenset[str]] | None = None,
    recent: Sequence[int] = (),
    saved: Sequence[int] | None = None,
    mailbox_id: int = 1,
) -> SearchContext:
    return SearchContext(
        mailbox_id=mailbox_id,
        uids=list(uids),
        flags=flags or {u: frozenset() for u in uids},
        recent=frozenset(recent),
        saved=saved,
        now=NOW,
    )


async def mem(ctx: SearchContext, key: SearchKey) -> list[int]:
    return await search(NoIOStore(), ctx, key)  # type: ignore[arg-type]


# ------------------------------------------------------- flags (search-flags)

FLAG_UIDS = [3, 5, 8, 9, 12]  # gaps on purpose: sequence numbers 1..5
FLAGS = {
    3: frozenset({"$$hello"}),
    5: frozenset({"\\Seen", "\\Flagged"}),
    8: frozenset({"\\Answered", "$$hello"}),
    9: frozenset({"\\Flagged", "\\Draft"}),
    12: frozenset({"\\Deleted", "\\Answered"}),
}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (flag("\\Answered"), [8, 12]),
        (flag("\\Answered", False), [3, 5, 9]),
        (flag("\\Deleted"), [12]),
        (flag("\\Deleted", False), [3, 5, 8, 9]),
        (flag("\\Draft"), [9]),
        (flag("\\Draft", False), [3, 5, 8, 12]),
        (flag("\\Flagged"), [5, 9]),
        (flag("\\Flagged", False), [3, 8, 12]),
        (flag("\\Seen"), [5]),
        (flag("\\Seen", False), [3, 8, 9, 12]),
        (flag("$$hello"), [3, 8]),
        (flag("$$HELLO"), [3, 8]),          # keywords compare case-insensitively
        (flag("$$hello", False), [5, 9, 12]),
        (flag("\\SEEN"), [5]),
        (flag("$nothere"), []),
        (SearchAll(), FLAG_UIDS),
    ],
)
async def test_flag_keys(key: SearchKey, expected: list[int]) -> None:
    ctx = ctx_for(FLAG_UIDS, FLAGS, recent=[3, 8, 9, 12])
    assert await mem(ctx, key) == expected


async def test_recent_new_old() -> None:
    ctx = ctx_for(FLAG_UIDS, FLAGS, recent=[3, 5, 8])
    assert await mem(ctx, flag("\\Recent")) == [3, 5, 8]
    assert await mem(ctx, flag("\\Recent", False)) == [9, 12]
    assert await mem(ctx, NEW) == [3, 8]           # recent and unseen
    assert await mem(ctx, OLD) == [9, 12]


async def test_flags_missing_from_map_means_no_flags() -> None:
    ctx = ctx_for([1, 2], {1: frozenset({"\\Seen"})})
    assert await mem(ctx, flag("\\Seen", False)) == [2]


async def test_flag_combinations_from_search_flags_script() -> None:
    # "store 1:* flags (\seen \deleted)", "store 2 +flags (\flagged)"
    flags = {u: frozenset({"\\Seen", "\\Deleted"}) for u in FLAG_UIDS}
    flags[5] = flags[5] | {"\\Flagged"}
    ctx = ctx_for(FLAG_UIDS, flags)
    seen, deleted, flagged = flag("\\Seen"), flag("\\Deleted"), flag("\\Flagged")
    assert await mem(ctx, and_(seen, flagged)) == [5]
    assert await mem(ctx, and_(seen, SearchNot(flagged))) == [3, 8, 9, 12]
    assert await mem(ctx, and_(SearchNot(seen), flagged)) == []
    assert await mem(ctx, and_(seen, deleted, flagged)) == [5]
    assert await mem(ctx, and_(seen, deleted, SearchNot(flagged))) == [3, 8, 9, 12]
    assert await mem(ctx, and_(seen, SearchNot(deleted), flagged)) == []
    assert await mem(ctx, and_(SearchNot(seen), SearchNot(deleted), SearchNot(flagged))) == []


# --------------------------------------------------------------- sequence sets

VIEW = [2, 4, 6, 7, 10]  # seq 1..5


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (seq("1"), [2]),
        (seq("*"), [10]),
        (seq("1:*"), VIEW),
        (seq("*:4"), [7, 10]),             # reversed range: order is not significant
        (seq("4:2"), [4, 6, 7]),
        (seq("2,4"), [4, 7]),
        (seq("1:2,2:3,5"), [2, 4, 6, 10]),
        (seq("4:10"), [7, 10]),            # clamped to what exists
        (seq("10:20"), []),
        (seq("6"), []),
        (uidset("4"), [4]),
        (uidset("5"), []),                 # a gap in the UIDs
        (uidset("*"), [10]),
        (uidset("3:7"), [4, 6, 7]),
        (uidset("7:3"), [4, 6, 7]),
        (uidset("100:*"), [10]),           # n:* with n above the largest: still the largest
        (uidset("*:100"), [10]),
        (uidset("11:20"), []),
        (uidset("1:4294967295"), VIEW),
        (uidset("1,6,10"), [6, 10]),
    ],
)
async def test_sequence_sets(key: SearchKey, expected: list[int]) -> None:
    assert await mem(ctx_for(VIEW), key) == expected


async def test_sets_on_empty_mailbox() -> None:
    ctx = ctx_for([])
    for key in (seq("*"), seq("1:*"), uidset("*"), uidset("1:*"), SearchAll(), seq("$")):
        assert await mem(ctx, key) == []


async def test_saved_result() -> None:
    ctx = ctx_for(VIEW, saved=[4, 7, 99])        # 99 since expunged: not in the view
    assert await mem(ctx, seq("$")) == [4, 7]
    assert await mem(ctx, uidset("$")) == [4, 7]
    assert await mem(ctx, SearchNot(seq("$"))) == [2, 6, 10]
    assert await mem(ctx_for(VIEW, saved=None), seq("$")) == []
    assert await mem(ctx_for(VIEW, saved=[]), seq("$")) == []


async def test_nesting() -> None:
    ctx = ctx_for(VIEW, {2: frozenset({"\\Seen"}), 6: frozenset({"\\Seen", "\\Flagged"})})
    seen, flagged = flag("\\Seen"), flag("\\Flagged")
    assert await mem(ctx, SearchOr(seen, seq("*"))) == [2, 6, 10]
    assert await mem(ctx, SearchNot(SearchOr(seen, seq("*")))) == [4, 7]
    assert await mem(ctx, SearchNot(SearchNot(seen))) == [2, 6]
    assert await mem(ctx, and_(seq("1:3"), SearchOr(flagged, SearchNot(seen)))) == [4, 6]
    assert await mem(ctx, and_(and_(seen, and_(seq("2:*"))), SearchAll())) == [6]
    assert await mem(ctx, SearchOr(SearchOr(seq("1"), seq("2")), SearchAnd(()))) == VIEW
    assert await mem(ctx, and_()) == VIEW


# A reference evaluator, one message at a time, to compare nested trees with.
def reference(key: SearchKey, ctx: SearchContext, uid: int) -> bool:
    n = ctx.uids.index(uid) + 1
    match key:
        case SearchAll():
            return True
        case SearchFlag():
            if key.flag == "\\Recent":
                return (uid in ctx.recent) == key.present
            return (key.flag.lower() in {f.lower() for f in ctx.flags[uid]}) == key.present
        case SearchSet():
            if key.set.saved:
                return uid in (ctx.saved or ())
            if key.uid:
                return key.set.contains(uid, max(ctx.uids))
            return key.set.contains(n, len(ctx.uids))
        case SearchNot():
            return not reference(key.key, ctx, uid)
        case SearchOr():
            return reference(key.left, ctx, uid) or reference(key.right, ctx, uid)
        case SearchAnd():
            return all(reference(k, ctx, uid) for k in key.keys)
    raise AssertionError(key)


FLAG_NAMES = ["\\Seen", "\\Flagged", "\\Deleted", "$Junk", "\\Recent"]
ranges = st.builds(
    SeqRange, st.one_of(st.none(), st.integers(1, 30)), st.one_of(st.none(), st.integers(1, 30))
)
leaf = st.one_of(
    st.just(SearchAll()),
    st.builds(SearchFlag, st.sampled_from(FLAG_NAMES), st.booleans()),
    st.builds(SearchSet, st.booleans(), st.builds(SequenceSet, st.lists(ranges, min_size=1, max_size=3).map(tuple))),
    st.just(seq("$")),
)
trees = st.recursive(
    leaf,
    lambda kids: st.one_of(
        st.builds(SearchNot, kids),
        st.builds(SearchOr, kids, kids),
        st.lists(kids, max_size=3).map(lambda ks: SearchAnd(tuple(ks))),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    key=trees,
    uids=st.lists(st.integers(1, 40), unique=True, max_size=12).map(sorted),
    data=st.data(),
)
async def test_memory_keys_match_reference(key: SearchKey, uids: list[int], data: Any) -> None:
    flags = {u: frozenset(data.draw(st.sets(st.sampled_from(FLAG_NAMES[:4])))) for u in uids}
    recent = data.draw(st.sets(st.sampled_from(uids))) if uids else set()
    saved = data.draw(st.one_of(st.none(), st.lists(st.integers(1, 40))))
    ctx = ctx_for(uids, flags, recent=sorted(recent), saved=saved)
    expected = [u for u in uids if reference(key, ctx, u)]
    assert await mem(ctx, key) == expected


# ------------------------------------------------------------- pure helpers


def test_decode_needle() -> None:
    assert decode_needle("GRÜSSE".encode()) == "grüsse"
    assert decode_needle("Grüße".encode("latin-1")) == "grüsse"   # not UTF-8: Latin-1
    assert decode_needle(b"") == ""


def test_address_text() -> None:
    assert address_text([Address(None, "a", "b.org")]) == "a@b.org"
    assert address_text([Address("Real", "a", "b.org"), Address(None, "c", "d")]) == (
        "Real <a@b.org>, c@d"
    )
    group = [
        Address(None, "grp", None), Address(None, "u1", "d"), Address(None, "u2", "d"),
        Address(None, None, None), Address(None, "grp2", None), Address(None, None, None),
    ]
    assert address_text(group) == "grp: u1@d, u2@d;, grp2: ;"
    assert address_text([Address("=?UTF-8?Q?J=C3=BCrgen?=", "j", "x")]) == "Jürgen <j@x>"


# ----------------------------------------------------- with a real SqliteStore


class Spy:
    """Wraps a real store and records the calls search makes."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if name not in ("fetch_records", "search_text", "read_blob", "message_list"):
            return target

        async def wrapper(*args: Any) -> Any:
            self.calls.append((name, args))
            return await target(*args)

        return wrapper

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class Box:
    """A mailbox in a real SqliteStore with its messages appended."""

    def __init__(self, store: Any, mailbox_id: int, uids: list[int]):
        self.store = store
        self.mailbox_id = mailbox_id
        self.uids = uids

    async def ctx(self, **kw: Any) -> SearchContext:
        metas = await self.store.message_list(self.mailbox_id)
        return SearchContext(
            mailbox_id=self.mailbox_id,
            uids=[m.uid for m in metas],
            flags={m.uid: m.flags for m in metas},
            recent=kw.get("recent", frozenset()),
            saved=kw.get("saved"),
            now=kw.get("now", NOW),
        )

    async def seqs(self, key: SearchKey, store: Any = None, **kw: Any) -> list[int]:
        """Search and answer with sequence numbers, as the scripts expect."""
        ctx = await self.ctx(**kw)
        found = await search(store or self.store, ctx, key)
        return [ctx.uids.index(u) + 1 for u in found]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Any:
    sqlite = pytest.importorskip("mailbag.store.sqlite")
    if not hasattr(sqlite, "SqliteStore"):
        pytest.skip("store.sqlite.SqliteStore not there yet")
    store = sqlite.SqliteStore(tmp_path / "data")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def make_box(sqlite_store: Any) -> Any:
    from mailbag.store.api import AppendItem

    counter = iter(range(1, 1000))

    async def make(messages: Sequence[bytes | tuple[bytes, datetime | None, frozenset[str]]]) -> Box:
        account = await sqlite_store.create_account(f"user{next(counter)}", "x")
        box = await sqlite_store.create_mailbox(account.id, f"Search{next(counter)}")
        items = []
        for m in messages:
            if isinstance(m, bytes):
                items.append(AppendItem(m, internaldate=datetime(2008, 2, 22, 17, 6, 23, tzinfo=UTC)))
            else:
                data, when, flags = m
                items.append(AppendItem(data, flags=flags, internaldate=when))
        result = await sqlite_store.append(box.id, items)
        return Box(sqlite_store, box.id, list(result.uids))

    return make


def mbox(text: str) -> list[bytes]:
    """Split an mbox the way imapscript.py does: CRLF lines, the blank line
    before the next From line belongs to the message."""
    lines = text.encode().split(b"\n")[:-1]
    out: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"From user@domain"):
            out.append([])
        else:
            out[-1].append(line)
    return [b"".join(x + b"\r\n" for x in msg) for msg in out]


SEARCH_ADDRESSES_MBOX = """\
From user@domain  Fri Feb 22 17:06:23 2008
From: user-from@domain.org
To: user-to@domain.org
Cc: user-cc@domain.org
Bcc: user-bcc@domain.org

body

From user@domain  Fri Feb 22 17:06:23 2008
From: RealFrom <user-from@domain.org>
To: RealTo <user-to@domain.org>
Cc: RealCc <user-cc@domain.org>
Bcc: RealBcc <user-bcc@domain.org>

body2

From user@domain  Fri Feb 22 17:06:23 2008
From: <user-from (comment)@ (comment) domain.org>
To: <user-to@domain.org>
Cc: <user-cc@domain.org>
Bcc: <user-bcc@domain.org>

body3

From user@domain  Fri Feb 22 17:06:23 2008
From: user-from@domain.org (RealFrom)
To: user-to@domain.org (RealTo)
Cc: user-cc@domain.org (RealCc)
Bcc: user-bcc@domain.org (RealBcc)

body4

From user@domain  Fri Feb 22 17:06:23 2008
From: user-from1@domain.org, user-from2@domain.org
Cc: user-cc@domain.org

body5

From user@domain  Fri Feb 22 17:06:23 2008
From: RealFrom <user-from@domain.org>
To: groupname: groupuser1@domain.org, groupuser2@domain.org;,
  groupname2: groupuser3@domain.org;

body6

From user@domain  Fri Feb 22 17:06:23 2008
From: RealFrom <user-from@domain.org>
To: groupname:;

body7
"""


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("from", "user-from@domain.org", [1, 2, 3, 4, 6, 7]),
        ("to", "user-to@domain.org", [1, 2, 3, 4]),
        ("cc", "user-cc@domain.org", [1, 2, 3, 4, 5]),
        ("bcc", "user-bcc@domain.org", [1, 2, 3, 4]),
        ("from", "realfrom", [2, 4, 6, 7]),
        ("to", "realto", [2, 4]),
        ("cc", "realcc", [2, 4]),
        ("bcc", "realbcc", [2, 4]),
        ("from", "", [1, 2, 3, 4, 5, 6, 7]),
        ("to", "", [1, 2, 3, 4, 6, 7]),
        ("cc", "", [1, 2, 3, 4, 5]),
        ("bcc", "", [1, 2, 3, 4]),
        ("from", "ser-fro", [1, 2, 3, 4, 5, 6, 7]),
        ("to", "ser-t", [1, 2, 3, 4]),
        ("cc", "ser-c", [1, 2, 3, 4, 5]),
        ("bcc", "ser-bc", [1, 2, 3, 4]),
        ("from", "ealfro", [2, 4, 6, 7]),
        ("to", "ealt", [2, 4]),
        ("cc", "ealc", [2, 4]),
        ("bcc", "ealbc", [2, 4]),
        ("from", "user-from1", [5]),
        ("from", "user-from2", [5]),
        ("to", "groupname", [6, 7]),
        ("to", "groupname2", [6]),
        ("to", "groupuser1", [6]),
        ("to", "groupuser2", [6]),
        ("to", "groupuser3", [6]),
        ("to", "groupuser4", []),
        ("from", "REALFROM <USER-FROM@", [2, 4, 6, 7]),  # Dovecot's "Name <addr>" form; a comment is a name
    ],
)
async def test_conformance_search_addresses(
    make_box: Any, field: str, value: str, expected: list[int]
) -> None:
    box = await make_box(mbox(SEARCH_ADDRESSES_MBOX))
    assert await box.seqs(hdr(field, value)) == expected


SEARCH_HEADER_MBOX = """\
From user@domain  Fri Feb 22 17:06:23 2008
Subject: hello beautiful world

body

From user@domain  Fri Feb 22 17:06:23 2008
X-Extra: hello beautiful header
X-Extra: another one

body
"""


async def test_conformance_search_header(make_box: Any) -> None:
    box = await make_box(mbox(SEARCH_HEADER_MBOX))
    await box.seqs(hdr("subject", ""))         # the script only checks it is OK
    for value in ("hello", "beautiful", "world", "hello beautiful", "hello beautiful world",
                  "eautiful worl", "HELLO"):
        assert await box.seqs(hdr("subject", value)) == [1], value
    assert await box.seqs(hdr("subject", "")) == [1]
    assert await box.seqs(SearchNot(hdr("subject", ""))) == [2]
    assert await box.seqs(hdr("x-extra", "")) == [2]
    assert await box.seqs(SearchNot(hdr("x-extra", ""))) == [1]
    for value in ("hello", "hello beautiful", "eautiful head", "another", "ANOTHER ONE"):
        assert await box.seqs(hdr("x-extra", value)) == [2], value
    assert await box.seqs(hdr("x-extra", "world")) == []


SEARCH_SIZE_MBOX = """\
From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200

1

From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200

22

From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200

333

From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200

4
4

"""


async def test_conformance_search_size(make_box: Any) -> None:
    box = await make_box(mbox(SEARCH_SIZE_MBOX))
    records = await box.store.fetch_records(box.mailbox_id, box.uids)
    size = {r.uid: r.size for r in records}[box.uids[2]]
    smaller, larger = SearchSize(False, size), SearchSize(True, size)
    assert await box.seqs(smaller) == [1, 2]
    assert await box.seqs(larger) == [4]
    assert await box.seqs(SearchNot(smaller)) == [3, 4]
    assert await box.seqs(SearchNot(larger)) == [1, 2, 3]
    assert await box.seqs(and_(SearchNot(smaller), SearchNot(larger))) == [3]
    assert await box.seqs(SearchOr(smaller, larger)) == [1, 2, 4]


SEARCH_BODY_MBOX = """\
From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200

asdfghjkl zxcvbnm

From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200
Subject: qwertyuiop

asdfghjkl

From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200
X-Header: qwertyuiop

zxcvbnm

From user@domain  Fri Feb 22 17:06:23 2008
Date: Sat, 24 Mar 2007 23:00:00 +0200

zxcvbnm qwertyuiop
"""


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ("TEXT", "asdfghjkl", [1, 2]),
        ("TEXT", "zxcvbnm", [1, 3, 4]),
        ("TEXT", "qwertyuiop", [2, 3, 4]),
        ("BODY", "asdfghjkl", [1, 2]),
        ("BODY", "zxcvbnm", [1, 3, 4]),
        ("BODY", "qwertyuiop", [4]),
        ("TEXT", "sdfghjk", [1, 2]),
        ("TEXT", "xcvbn", [1, 3, 4]),
        ("TEXT", "wertyuio", [2, 3, 4]),
        ("BODY", "sdfghjk", [1, 2]),
        ("BODY", "xcvbn", [1, 3, 4]),
        ("BODY", "wertyuio", [4]),
        ("BODY", "WERTYUIO", [4]),
        ("BODY", "", [1, 2, 3, 4]),
    ],
)
async def test_conformance_search_body(
    make_box: Any, where: Any, value: str, expected: list[int]
) -> None:
    box = await make_box(mbox(SEARCH_BODY_MBOX))
    assert await box.seqs(SearchText(where, value.encode())) == expected


async def test_text_is_one_store_call_per_key(make_box: Any) -> None:
    box = await make_box(mbox(SEARCH_BODY_MBOX))
    spy = Spy(box.store)
    key = and_(SearchText("BODY", b"zxcvbnm"), SearchOr(SearchText("TEXT", b"qwerty"), SearchSize(True, 0)))
    assert await box.seqs(key, store=spy) == [1, 3, 4]
    assert spy.names().count("search_text") == 2
    # inside a per-message pass the text index is still asked once per key
    spy.calls.clear()
    key2 = SearchOr(and_(SearchText("TEXT", b"qwerty"), SearchSize(True, 0)),
                    and_(SearchText("BODY", b"asdf"), SearchSize(False, 10**6)))
    assert await box.seqs(key2, store=spy) == [1, 2, 3, 4]
    assert spy.names().count("search_text") == 2
    # equal keys share one answer
    spy.calls.clear()
    body = SearchText("BODY", b"zxcvbnm")
    assert await box.seqs(SearchOr(body, and_(SearchNot(body), seq("1:2"))), store=spy) == [1, 2, 3, 4]
    assert spy.names().count("search_text") == 1


# ----------------------------------------------------- dates, sizes, modseq


def msg(headers: str, body: str = "body\r\n") -> bytes:
    return (headers.replace("\n", "\r\n") + "\r\n" + body).encode()


EST = timezone(timedelta(hours=-5))
PLUS14 = timezone(timedelta(hours=14))


@pytest.fixture
async def dated_box(make_box: Any) -> Box:
    box: Box = await make_box([
        # 1: late evening in New York, already the next day in UTC
        (msg("Date: Sat, 2 Mar 2024 10:00:00 +1400\nSubject: one\n"),
         datetime(2024, 3, 1, 23, 30, tzinfo=EST), frozenset()),
        # 2: no Date: header, SENT* falls back to the internal date
        (msg("Subject: two\n"), datetime(2024, 3, 5, 8, 0, tzinfo=UTC), frozenset()),
        # 3: an unparsable Date: header
        (msg("Date: someday\nSubject: three\n"), datetime(2024, 3, 10, 8, 0, tzinfo=UTC), frozenset()),
        # 4: recent
        (msg("Date: Fri, 31 May 2024 12:00:00 +0000\nSubject: four\n", "x" * 500 + "\r\n"),
         NOW - timedelta(hours=1), frozenset({"\\Seen"})),
    ])
    return box


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # internal date, in its own zone: 1 is on 2024-03-01 although UTC says the 2nd
        (SearchDate("ON", False, date(2024, 3, 1)), [1]),
        (SearchDate("ON", False, date(2024, 3, 2)), []),
        (SearchDate("BEFORE", False, date(2024, 3, 5)), [1]),
        (SearchDate("BEFORE", False, date(2024, 3, 6)), [1, 2]),
        (SearchDate("SINCE", False, date(2024, 3, 5)), [2, 3, 4]),
        (SearchDate("SINCE", False, date(2024, 3, 2)), [2, 3, 4]),
        # sent date, in the Date: header's own zone: 2 Mar at +1400
        (SearchDate("ON", True, date(2024, 3, 2)), [1]),
        (SearchDate("ON", True, date(2024, 3, 5)), [2]),     # fallback: internal date
        (SearchDate("ON", True, date(2024, 3, 10)), [3]),    # bad Date: as well
        (SearchDate("BEFORE", True, date(2024, 3, 2)), []),
        (SearchDate("BEFORE", True, date(2024, 3, 3)), [1]),
        (SearchDate("SINCE", True, date(2024, 3, 6)), [3, 4]),
        (SearchDate("ON", True, date(2024, 5, 31)), [4]),
        # RFC 5032
        (SearchWithin(False, 3600), [4]),                   # YOUNGER: at most an hour old
        (SearchWithin(False, 3599), []),
        (SearchWithin(True, 3600), [1, 2, 3, 4]),           # OLDER: at least an hour old
        (SearchWithin(True, 3601), [1, 2, 3]),
        # sizes
        (SearchSize(True, 400), [4]),
        (SearchSize(False, 400), [1, 2, 3]),
        (SearchSize(True, 10**9), []),
        (SearchSize(False, 0), []),
        (and_(flag("\\Seen"), SearchSize(True, 400)), [4]),
        (and_(flag("\\Seen", False), SearchSize(True, 400)), []),
    ],
)
async def test_dates_and_sizes(dated_box: Box, key: SearchKey, expected: list[int]) -> None:
    assert await dated_box.seqs(key) == expected


async def test_modseq(make_box: Any) -> None:
    box = await make_box([msg(f"Subject: m{i}\n") for i in range(5)])
    ctx = await box.ctx()
    # every message starts at some modseq; flag changes raise it
    base = max(m.modseq for m in await box.store.message_list(box.mailbox_id))
    result = await box.store.store_flags(box.mailbox_id, box.uids[1:3], "add", frozenset({"\\Seen"}))
    top = max(m.modseq for m in result.changed)
    assert top > base
    assert await search(box.store, ctx, SearchModseq(base + 1)) == box.uids[1:3]
    assert await search(box.store, ctx, SearchModseq(top)) == [
        m.uid for m in result.changed if m.modseq >= top
    ]
    assert await search(box.store, ctx, SearchModseq(top + 1)) == []
    assert await search(box.store, ctx, SearchModseq(0)) == box.uids
    assert await search(box.store, ctx, SearchNot(SearchModseq(base + 1))) == [
        box.uids[0], *box.uids[3:]
    ]
    uids, highest = await search_with_modseq(box.store, ctx, SearchModseq(base + 1))
    assert (uids, highest) == (box.uids[1:3], top)
    uids, highest = await search_with_modseq(box.store, ctx, seq("1"))
    first = [m.modseq for m in await box.store.message_list(box.mailbox_id) if m.uid == box.uids[0]]
    assert (uids, highest) == ([box.uids[0]], first[0])
    assert await search_with_modseq(box.store, ctx, seq("10")) == ([], None)
    # through a record pass too
    uids, highest = await search_with_modseq(box.store, ctx, SearchSize(True, 0))
    assert (uids, highest) == (box.uids, top)


# ------------------------------------------------------- headers and text


HEADERS_MSGS = [
    msg("From: =?UTF-8?Q?J=C3=BCrgen_Stra=C3=9Fer?= <juergen@example.DE>\n"
        "To: Ann <ann@example.org>\n"
        "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\n"
        "Message-ID: <abc.123@example.de>\n"
        "X-Mailer: Mutt/2.2\n"
        "X-Empty:\n"),
    msg("From: Bob <bob@example.org>\n"
        "To: ann@example.org\n"
        "Subject: Re: hello\n"
        "Message-ID: <def.456@example.org>\n"
        "In-Reply-To: <abc.123@example.de>\n"
        "References: <zzz@x> <abc.123@example.de>\n"
        "X-Mailer: Thunderbird\n"),
    msg("Subject: no addresses at all\n"
        "To:\n"),
]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (hdr("subject", "GRÜSSE"), [1]),                    # ß casefolds to ss
        (hdr("subject", "köln"), [1]),
        (hdr("subject", "KÖLN".encode("latin-1")), [1]),   # a Latin-1 needle
        (hdr("from", "jürgen"), [1]),
        (hdr("from", "STRASSER"), [1]),
        (hdr("from", "example.de"), [1]),
        (hdr("from", "bob"), [2]),
        (hdr("to", "ann@example.org"), [1, 2]),
        (hdr("to", "ann <"), [1]),
        (hdr("to", ""), [1, 2, 3]),                          # an empty To: still exists
        (hdr("cc", ""), []),
        (hdr("from", ""), [1, 2]),
        (hdr("message-id", "abc.123"), [1]),
        (hdr("message-id", ""), [1, 2]),
        (hdr("in-reply-to", "abc.123@example.de"), [2]),
        (hdr("references", "zzz@x"), [2]),
        (hdr("references", ""), [2]),
        (hdr("x-mailer", "mutt"), [1]),
        (hdr("X-MAILER", "THUNDER"), [2]),
        (hdr("x-mailer", ""), [1, 2]),
        (hdr("x-empty", ""), [1]),
        (hdr("x-empty", "a"), []),
        (hdr("x-missing", ""), []),
        (SearchNot(hdr("x-mailer", "")), [3]),
        (SearchOr(hdr("x-mailer", "mutt"), hdr("subject", "addresses")), [1, 3]),
        (and_(seq("2:*"), hdr("subject", "")), [2, 3]),
    ],
)
async def test_headers(make_box: Any, key: SearchKey, expected: list[int]) -> None:
    box = await make_box(HEADERS_MSGS)
    assert await box.seqs(key) == expected


async def test_non_ascii_body(make_box: Any) -> None:
    box = await make_box([
        msg("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
            "Straße und Ärger\r\n"),
        msg("Subject: plain\n", "nothing here\r\n"),
    ])
    assert await box.seqs(SearchText("BODY", "ÄRGER".encode())) == [1]
    assert await box.seqs(SearchText("TEXT", b"STRASSE")) == [1]


# ---------------------------------------------------------------- efficiency


async def test_memory_keys_do_not_touch_the_store(make_box: Any) -> None:
    box = await make_box([msg(f"Subject: m{i}\n") for i in range(4)])
    spy = Spy(box.store)
    await box.seqs(and_(SearchOr(flag("\\Seen"), seq("2:3")), SearchNot(uidset("1"))), store=spy)
    assert spy.calls == []


async def test_cheap_keys_narrow_before_records_load(make_box: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(search_mod, "BATCH", 3)
    box = await make_box([
        (msg(f"Subject: m{i}\n"), None, frozenset({"\\Seen"} if i % 2 else set())) for i in range(10)
    ])
    spy = Spy(box.store)
    found = await box.seqs(and_(hdr("subject", "m"), flag("\\Seen"), hdr("x-any", "")), store=spy)
    assert found == []
    fetched = [uid for name, args in spy.calls if name == "fetch_records" for uid in args[1]]
    assert sorted(fetched) == box.uids[1::2]                # only the \Seen ones
    batches = [args[1] for name, args in spy.calls if name == "fetch_records"]
    assert all(len(b) <= 3 for b in batches)
    assert len(batches) == 2                                # one pass for both dear keys
    assert spy.names().count("read_blob") == 5             # x-any only after subject matched


async def test_or_prefers_the_cheap_side(make_box: Any) -> None:
    box = await make_box([msg(f"Subject: m{i}\n") for i in range(6)])
    spy = Spy(box.store)
    found = await box.seqs(SearchOr(SearchSize(True, 0), seq("1:4")), store=spy)
    assert found == [1, 2, 3, 4, 5, 6]
    fetched = [uid for name, args in spy.calls if name == "fetch_records" for uid in args[1]]
    assert sorted(fetched) == box.uids[4:]


async def test_many_messages_in_batches(make_box: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(search_mod, "BATCH", 7)
    box = await make_box([msg(f"Subject: n{i}\n", "y" * i + "\r\n") for i in range(40)])
    spy = Spy(box.store)
    found = await box.seqs(and_(SearchSize(True, 0), SearchNot(hdr("subject", "n3"))), store=spy)
    assert found == [i + 1 for i in range(40) if "n3" not in f"n{i}"]
    batches = [args[1] for name, args in spy.calls if name == "fetch_records"]
    # SUBJECT is answered by the text index first: 29 messages left, 5 batches.
    assert len(batches) == 5 and max(len(b) for b in batches) == 7


@pytest.mark.parametrize("view_every", [1, 2, 40])
async def test_text_hits_kept_only_in_the_view(make_box: Any, view_every: int) -> None:
    """A text key's hits are the store's for the whole mailbox; the answer
    keeps those in the session's view, ascending, whether hits are many
    against the view (one pass over the view) or few (a look-up per hit)."""
    box = await make_box([msg(f"Subject: s{i}\n", f"common rare-{i % 50}-x\r\n") for i in range(120)])
    ctx = await box.ctx()
    view = [u for i, u in enumerate(ctx.uids) if i % view_every == 0]
    ctx = SearchContext(mailbox_id=ctx.mailbox_id, uids=view, flags=ctx.flags,
                        recent=frozenset(), saved=None, now=NOW)
    for needle, want in ((b"common", view), (b"rare-7-", [u for u in view if u % 50 == 8])):
        got = await search(box.store, ctx, SearchText("BODY", needle))
        assert got == want, needle
