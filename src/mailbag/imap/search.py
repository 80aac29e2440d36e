"""SEARCH key evaluation: RFC 9051 §6.4.4 (and the RFC 3501 §6.4.4 keys),
RFC 7162 §3.1.5 MODSEQ, RFC 5032 OLDER/YOUNGER, RFC 5182 §2.1 '$', RFC 8514
§4 SAVEDBEFORE/SAVEDON/SAVEDSINCE, RFC 8474 §6 EMAILID/THREADID.

Keys are evaluated as sets of UIDs, cheapest first, so that the expensive ones
only look at the messages that survived: flags, sequence and UID sets come from
the session's view (no I/O); BODY/TEXT is one indexed store query per key;
MODSEQ needs the mailbox's message list; dates, sizes and header fields need
MessageRecords, loaded in bounded batches; HEADER on an arbitrary field needs
the raw message and comes last.

Substring matches are case-insensitive with str.casefold on decoded text, so
non-ASCII text matches regardless of case too.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import IntEnum

from mailbag.mime.message import Address, ParsedMessage
from mailbag.mime.text import INDEXED_FIELDS, address_text
from mailbag.store.api import MessageRecord, Store, TextWhere
from mailbag.wire.commands import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchObjectId,
    SearchOr,
    SearchSaveDate,
    SearchSet,
    SearchSize,
    SearchText,
    SearchWithin,
    SequenceSet,
)

BATCH = 500

RECENT = "\\recent"


def email_id(blob_id: str) -> str:
    """The EMAILID of a message (RFC 8474 §5.1): its content hash, so the
    same bytes stored twice (COPY, MOVE, one delivery to many folders) keep
    one id, as the RFC wants for a copy or a move."""
    return "M" + blob_id[:24]


@dataclass(frozen=True)
class SearchContext:
    mailbox_id: int
    uids: Sequence[int]                    # uids[i] is sequence number i+1, ascending
    flags: Mapping[int, frozenset[str]]    # uid -> flags as the session knows them
    recent: frozenset[int]                 # uids that are \Recent in this session
    saved: Sequence[int] | None            # SEARCHRES '$'; None if nothing saved
    now: datetime                          # reference time for OLDER/YOUNGER
    uidvalidity: int = 0                   # 0: unknown (SORT then keeps no order in memory)


class Cost(IntEnum):
    """What a key needs, in the order it is cheapest to evaluate."""

    MEMORY = 0     # the session's view
    INDEX = 1      # one store.search_text call
    META = 2       # modseq of each message (store.message_list)
    RECORD = 3     # MessageRecord: internaldate, size
    FACTS = 4      # ParsedMessage facts: addresses, subject, sent date
    BLOB = 5       # the raw message: HEADER on an arbitrary field


# Header fields answered from the parsed facts instead of the raw message.
_ADDRESS_FIELDS = {b"FROM": "from_", b"TO": "to", b"CC": "cc", b"BCC": "bcc"}
_FACT_FIELDS = frozenset({*_ADDRESS_FIELDS, b"SUBJECT", b"MESSAGE-ID", b"IN-REPLY-TO",
                          b"REFERENCES"})


def cost(key: SearchKey) -> Cost:
    match key:
        case SearchAll() | SearchFlag() | SearchSet():
            return Cost.MEMORY
        case SearchObjectId() if key.kind == "THREADID":
            return Cost.MEMORY      # THREADID is NIL: nothing has one
        case SearchObjectId() | SearchSaveDate():
            return Cost.RECORD
        case SearchText():
            return Cost.INDEX
        case SearchModseq():
            return Cost.META
        case SearchSize() | SearchWithin():
            return Cost.RECORD
        case SearchDate():
            return Cost.FACTS if key.sent else Cost.RECORD
        case SearchHeader() if _indexed(key):
            return Cost.INDEX
        case SearchHeader():
            # An empty value on a facts field may still need the raw header
            # (a present but empty or unparsable field), but only for messages
            # whose facts are empty: rare enough to rank it with the facts.
            return Cost.FACTS if key.name in _FACT_FIELDS else Cost.BLOB
        case SearchNot():
            return cost(key.key)
        case SearchOr():
            return max(cost(key.left), cost(key.right))
        case SearchAnd():
            return max((cost(k) for k in key.keys), default=Cost.MEMORY)
    raise TypeError(f"unknown search key {key!r}")


_FIELD_WHERE: dict[bytes, TextWhere] = {
    b"FROM": "FROM", b"TO": "TO", b"CC": "CC", b"BCC": "BCC", b"SUBJECT": "SUBJECT",
}


def _indexed(key: SearchKey) -> bool:
    """FROM/TO/CC/BCC/SUBJECT with a non-empty needle: one text-index query.
    (An empty needle asks whether the field exists at all: see _header_test.)"""
    return (isinstance(key, SearchHeader) and key.name.upper() in INDEXED_FIELDS
            and bool(key.value))


def decode_needle(value: bytes) -> str:
    """Search strings arrive as bytes; clients send UTF-8 (or declare a charset
    whose text is almost always Latin-1 compatible when it is not UTF-8)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    return text.casefold()


class _Message:
    """One message during a record pass; facts and raw bytes load on demand."""

    __slots__ = ("uid", "modseq", "record", "_parsed", "_raw", "_store")

    def __init__(self, store: Store, uid: int, modseq: int, record: MessageRecord | None):
        self._store = store
        self.uid = uid
        self.modseq = modseq
        self.record = record
        self._parsed: ParsedMessage | None = None
        self._raw: bytes | None = None

    def rec(self) -> MessageRecord:
        assert self.record is not None, "record pass without records"
        return self.record

    def parsed(self) -> ParsedMessage:
        if self._parsed is None:
            self._parsed = ParsedMessage.from_bytes(self.rec().facts)
        return self._parsed

    async def raw(self) -> bytes:
        if self._raw is None:
            self._raw = await self._store.read_blob(self.rec().blob_id)
        return self._raw

    async def header_values(self, name: bytes) -> list[str]:
        from mailbag.mime.text import header_values

        values: list[str] = header_values(await self.raw(), self.parsed(), name)
        return values


class Searcher:
    """Evaluates search keys for one SEARCH command; caches what keys share
    (text-index results, the modseq map, the modseqs of loaded records)."""

    def __init__(self, store: Store, ctx: SearchContext):
        self.store = store
        self.ctx = ctx
        self._text: dict[SearchText, set[int]] = {}
        self._fields: dict[SearchHeader, set[int]] = {}
        self._sets: dict[SearchSet, set[int]] = {}
        self._flag_cache: dict[int, frozenset[str]] = {}
        self._modseqs: dict[int, int] | None = None
        self.seen_modseqs: dict[int, int] = {}

    # ------------------------------------------------------------- entry
    async def run(self, key: SearchKey) -> list[int]:
        # One text-index key (the common SEARCH BODY/FROM/SUBJECT): its hits,
        # kept if the view has them, without a set of every UID.
        if isinstance(key, SearchAll):
            # SORT ... ALL on every page view of a webmail client: the view
            # itself (ascending, distinct), without a set of 100,000 UIDs.
            return list(self.ctx.uids)
        if isinstance(key, SearchText):
            hits = await self._text_set(key)
        elif isinstance(key, SearchHeader) and _indexed(key):
            hits = await self._field_set(key)
        else:
            hits = await self.eval(key, set(self.ctx.uids))
            if len(hits) * 16 < len(self.ctx.uids):
                return sorted(hits)
        if hits:
            uids = self.ctx.uids
            if len(hits) * 16 >= len(uids):
                # Many hits: one pass over the (ascending) view with a set
                # probe each beats sorting the hits and a bisect per hit
                # (~2 ms against ~25 ms for 100,000 hits).
                return [u for u in uids if u in hits]
            out = []
            for u in sorted(hits):
                i = bisect_left(uids, u)
                if i < len(uids) and uids[i] == u:
                    out.append(u)
            return out
        return []

    async def highest_modseq(self, uids: Sequence[int]) -> int | None:
        if not uids:
            return None
        known = self._modseqs if self._modseqs is not None else self.seen_modseqs
        missing = [u for u in uids if u not in known]
        if missing and len(missing) > BATCH:
            known = await self._modseq_map()
        elif missing:
            for rec in await self.store.fetch_records(self.ctx.mailbox_id, missing):
                self.seen_modseqs[rec.uid] = rec.modseq
            known = self.seen_modseqs
        values = [known[u] for u in uids if u in known]
        return max(values) if values else None

    # --------------------------------------------------------- set level
    async def eval(self, key: SearchKey, domain: set[int]) -> set[int]:
        """The members of ``domain`` that match ``key``."""
        if not domain:
            return set()
        c = cost(key)
        match key:
            case SearchAnd():
                return await self._eval_and(_flatten(key), domain)
            case SearchNot():
                return domain - await self.eval(key.key, domain)
            case SearchOr():
                lc, rc = cost(key.left), cost(key.right)
                if lc >= Cost.META and rc >= Cost.META:
                    return await self._pass(key, domain)    # one load for both sides
                first, second = (key.left, key.right) if lc <= rc else (key.right, key.left)
                hit = await self.eval(first, domain)
                return hit | await self.eval(second, domain - hit)
            case SearchText():
                return domain & await self._text_set(key)
            case SearchHeader() if _indexed(key):
                return domain & await self._field_set(key)
            case SearchSet():
                return domain & self._set(key)
            case SearchAll():
                return set(domain)
            case SearchFlag() if key.flag.lower() != RECENT:
                return self._flag_set(key, domain)
            case _ if c == Cost.MEMORY:
                return {u for u in domain if self._memory_test(key, u)}
            case _:
                return await self._pass(key, domain)

    async def _eval_and(self, keys: list[SearchKey], domain: set[int]) -> set[int]:
        keys = sorted(keys, key=cost)
        cheap = [k for k in keys if cost(k) < Cost.META]
        dear = [k for k in keys if cost(k) >= Cost.META]
        for k in cheap:
            domain = await self.eval(k, domain)
            if not domain:
                return domain
        if len(dear) == 1:
            return await self.eval(dear[0], domain)
        if dear:
            return await self._pass(SearchAnd(tuple(dear)), domain)
        return domain

    async def _pass(self, key: SearchKey, domain: set[int]) -> set[int]:
        """Test ``key`` message by message, loading what it needs in batches."""
        out: set[int] = set()
        if cost(key) <= Cost.META:
            modseqs = await self._modseq_map()
            for uid in domain:
                if uid in modseqs and await self._test(key, _Message(self.store, uid, modseqs[uid], None)):
                    out.add(uid)
            return out
        ordered = sorted(domain)
        for i in range(0, len(ordered), BATCH):
            records = await self.store.fetch_records(self.ctx.mailbox_id, ordered[i:i + BATCH])
            for rec in records:
                self.seen_modseqs[rec.uid] = rec.modseq
                if await self._test(key, _Message(self.store, rec.uid, rec.modseq, rec)):
                    out.add(rec.uid)
            await asyncio.sleep(0)   # let other connections run between batches
        return out

    # ----------------------------------------------------- message level
    async def _test(self, key: SearchKey, m: _Message) -> bool:
        match key:
            case SearchAnd():
                for k in sorted(key.keys, key=cost):
                    if not await self._test(k, m):
                        return False
                return True
            case SearchOr():
                first, second = sorted((key.left, key.right), key=cost)
                return await self._test(first, m) or await self._test(second, m)
            case SearchNot():
                return not await self._test(key.key, m)
            case SearchText():
                return m.uid in await self._text_set(key)
            case SearchHeader() if _indexed(key):
                return m.uid in await self._field_set(key)
            case SearchSet():
                return m.uid in self._set(key)
            case SearchModseq():
                return m.modseq >= key.modseq
            case SearchSize():
                size = m.rec().size
                return size > key.size if key.larger else size < key.size
            case SearchWithin():
                age = self.ctx.now - m.rec().internaldate
                # Dovecot: OLDER n is "at least n seconds old", YOUNGER n "at most".
                limit = timedelta(seconds=key.seconds)
                return age >= limit if key.older else age <= limit
            case SearchDate():
                return _date_matches(key, self._message_day(key, m))
            case SearchSaveDate():
                # "Disregarding time and timezone" as for BEFORE/ON/SINCE.
                return _date_matches(key, m.rec().savedate.date())
            case SearchObjectId() if key.kind == "EMAILID":
                return email_id(m.rec().blob_id) == key.value
            case SearchHeader():
                return await self._header_test(key, m)
            case _:
                return self._memory_test(key, m.uid)

    def _message_day(self, key: SearchDate, m: _Message) -> date:
        # "Disregarding time and timezone": the date as written in its own zone.
        if key.sent:
            sent = m.parsed().sent_date
            if sent is not None:          # no usable Date: falls back, as in Dovecot
                return sent.date()
        return m.rec().internaldate.date()

    async def _header_test(self, key: SearchHeader, m: _Message) -> bool:
        needle = decode_needle(key.value)
        name = key.name.upper()
        if name in _FACT_FIELDS:
            text = _fact_text(m.parsed(), name)
            if text:
                return needle in text.casefold()
            if needle:
                return False
            # Empty facts but an empty needle: is the field there at all?
            return bool(await m.header_values(name))
        values = await m.header_values(name)
        if not needle:
            return bool(values)
        return any(needle in v.casefold() for v in values)

    def _memory_test(self, key: SearchKey, uid: int) -> bool:
        match key:
            case SearchAll():
                return True
            case SearchFlag():
                flag = key.flag.lower()
                if flag == RECENT:
                    has = uid in self.ctx.recent
                else:
                    has = flag in self._lower_flags(uid)
                return has == key.present
            case SearchSet():
                return uid in self._set(key)
            case SearchObjectId():
                return False        # THREADID: FETCH answers NIL for every message
        raise TypeError(f"not a memory key: {key!r}")

    def _flag_set(self, key: SearchFlag, domain: set[int]) -> set[int]:
        """The members of ``domain`` with (or without) the flag. Messages
        share a handful of distinct flag sets: each is tested once, which
        makes UNSEEN on 100,000 messages a dict probe per message instead of
        a lower-cased copy of every message's flags."""
        flag = key.flag.lower()
        flags = self.ctx.flags
        snapshot = getattr(flags, "snapshot", None)    # the session's lazy view
        if snapshot is not None and len(domain) * 16 >= len(self.ctx.uids):
            # Most of the view: copying it whole beats a look-up per message.
            flags = snapshot()
        # A message without flags known has none: it matches when the key
        # asks for the flag's absence.
        empty: frozenset[str] = frozenset()
        verdict: dict[frozenset[str], bool] = {}
        out = set()
        for u in domain:
            fs = flags.get(u, empty)
            hit = verdict.get(fs)
            if hit is None:
                hit = verdict[fs] = any(f.lower() == flag for f in fs) == key.present
            if hit:
                out.add(u)
        return out

    # ------------------------------------------------------------ helpers
    def _lower_flags(self, uid: int) -> frozenset[str]:
        # Flags and keywords compare case-insensitively (RFC 9051 §2.3.2).
        cached = self._flag_cache.get(uid)
        if cached is None:
            cached = frozenset(f.lower() for f in self.ctx.flags.get(uid, frozenset()))
            self._flag_cache[uid] = cached
        return cached

    def _set(self, key: SearchSet) -> set[int]:
        cached = self._sets.get(key)
        if cached is None:
            cached = _resolve_set(key, self.ctx)
            self._sets[key] = cached
        return cached

    async def _text_set(self, key: SearchText) -> set[int]:
        cached = self._text.get(key)
        if cached is None:
            needle = decode_needle(key.value)
            if needle:
                cached = await self.store.search_text(self.ctx.mailbox_id, key.where, needle)
            else:
                cached = set(self.ctx.uids)   # every text contains the empty string
            self._text[key] = cached
        return cached

    async def _field_set(self, key: SearchHeader) -> set[int]:
        cached = self._fields.get(key)
        if cached is None:
            where = _FIELD_WHERE[key.name.upper()]
            cached = await self.store.search_text(
                self.ctx.mailbox_id, where, decode_needle(key.value)
            )
            self._fields[key] = cached
        return cached

    async def _modseq_map(self) -> dict[int, int]:
        if self._modseqs is None:
            metas = await self.store.message_list(self.ctx.mailbox_id)
            self._modseqs = {m.uid: m.modseq for m in metas}
        return self._modseqs


def _flatten(key: SearchAnd) -> list[SearchKey]:
    out: list[SearchKey] = []
    for k in key.keys:
        if isinstance(k, SearchAnd):
            out.extend(_flatten(k))
        else:
            out.append(k)
    return out


def _resolve_set(key: SearchSet, ctx: SearchContext) -> set[int]:
    """The UIDs in the view that a sequence set or UID set names. '*' is the
    highest sequence number or UID; a range is unordered, so with UIDs n:*
    still names the highest UID when n is above it (RFC 9051 §6.4.8)."""
    uids = ctx.uids
    if key.set.saved:
        return set(ctx.saved or ()) & set(uids)
    if not uids:
        return set()
    out: set[int] = set()
    if key.uid:
        star = uids[-1]
        for a, b in _spans(key.set, star):
            out.update(uids[bisect_left(uids, a):bisect_right(uids, b)])
    else:
        n = len(uids)
        for a, b in _spans(key.set, n):
            if a <= n:
                out.update(uids[max(a, 1) - 1:min(b, n)])
    return out


def _spans(s: SequenceSet, star: int) -> list[tuple[int, int]]:
    return [r.bounds(star) for r in s.ranges]


def _fact_text(p: ParsedMessage, name: bytes) -> str:
    attr = _ADDRESS_FIELDS.get(name)
    if attr is not None:
        addresses: tuple[Address, ...] = getattr(p, attr)
        return address_text(addresses)
    if name == b"SUBJECT":
        return p.subject
    if name == b"MESSAGE-ID":
        return p.message_id or ""
    if name == b"IN-REPLY-TO":
        return p.in_reply_to or ""
    return " ".join(p.references)


def _date_matches(key: SearchDate | SearchSaveDate, day: date) -> bool:
    if key.op == "BEFORE":
        return day < key.day
    if key.op == "ON":
        return day == key.day
    return day >= key.day


async def search(store: Store, ctx: SearchContext, key: SearchKey) -> list[int]:
    """Return the UIDs in the session's view that match ``key``, ascending."""
    return await Searcher(store, ctx).run(key)


async def search_with_modseq(
    store: Store, ctx: SearchContext, key: SearchKey
) -> tuple[list[int], int | None]:
    """Matches and the highest modseq among them (RFC 7162 §3.1.5 "(MODSEQ n)";
    None when nothing matched)."""
    s = Searcher(store, ctx)
    uids = await s.run(key)
    return uids, await s.highest_modseq(uids)
