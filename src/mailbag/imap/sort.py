"""SORT ordering: RFC 5256 §3 (ARRIVAL CC DATE FROM REVERSE SIZE SUBJECT TO,
the i;ascii-casemap comparator of RFC 4790 §9.2) and RFC 5957 §3
(DISPLAYFROM, DISPLAYTO).

The keys are computed once per message at ingest (mime/sortkeys.py) and
kept by the store, which orders a SORT with one query (``Store.sort_uids``).
``sort_from_records`` is the straightforward computation from each message's
MessageRecord and parsed facts, loaded in bounded batches: tests compare the
two. Messages that compare equal on every criterion stay in sequence-number
order (RFC 5256 §3: the final tiebreak is the sequence number, never
reversed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from mailbag.imap import search as _search
from mailbag.imap import sort_cache
from mailbag.imap.search import SearchContext
from mailbag.mime.message import ParsedMessage
from mailbag.mime.sortkeys import casemap, display, first_mailbox
from mailbag.store.api import MessageRecord, Store

__all__ = ["CRITERIA", "casemap", "sort", "sort_from_records"]

CRITERIA = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                      "DISPLAYFROM", "DISPLAYTO"})

SortKey = int | float | str


def _timestamp(d: datetime) -> float:
    return d.timestamp()


def _key_function(name: str) -> Callable[[MessageRecord, Callable[[], ParsedMessage]], SortKey]:
    if name == "ARRIVAL":
        return lambda rec, _p: _timestamp(rec.internaldate)
    if name == "SIZE":
        return lambda rec, _p: rec.size
    if name == "DATE":
        def sent(rec: MessageRecord, parsed: Callable[[], ParsedMessage]) -> SortKey:
            d = parsed().sent_date
            # RFC 5256: without a usable Date: the internal date stands in.
            return _timestamp(d if d is not None else rec.internaldate)
        return sent
    if name == "SUBJECT":
        return lambda _r, p: casemap(p().base_subject)
    if name == "FROM":
        return lambda _r, p: casemap(first_mailbox(p().from_))
    if name == "TO":
        return lambda _r, p: casemap(first_mailbox(p().to))
    if name == "CC":
        return lambda _r, p: casemap(first_mailbox(p().cc))
    if name == "DISPLAYFROM":
        return lambda _r, p: casemap(display(p().from_))
    if name == "DISPLAYTO":
        return lambda _r, p: casemap(display(p().to))
    raise ValueError(f"unknown sort criterion {name}")


def _empty_key(name: str) -> SortKey:
    return 0 if name in ("ARRIVAL", "SIZE", "DATE") else ""


async def sort(
    store: Store,
    ctx: SearchContext,
    criteria: Sequence[tuple[str, bool]],
    uids: Sequence[int],
) -> list[int]:
    """Order ``uids`` (normally a SEARCH result) by ``criteria``: pairs of
    (criterion name upper-cased, reverse). Returns UIDs in sorted order."""
    ordered = sorted(set(uids))
    if not ordered:
        return []
    named = [(name.upper(), reverse) for name, reverse in criteria]
    for name, _reverse in named:
        if name not in CRITERIA:
            raise ValueError(f"unknown sort criterion {name}")
    if len(ordered) < sort_cache.MIN_UIDS or not ctx.uidvalidity:
        return await store.sort_uids(ctx.mailbox_id, named, ordered)
    key = ("sort", ctx.mailbox_id, ctx.uidvalidity, tuple(named))
    mark = await store.expunge_mark(ctx.mailbox_id)     # before the query: see sort_cache
    hit = sort_cache.cached_order(store, key, mark, ordered)
    if hit is not None:
        return hit
    # Order the session's whole view, so the next SORT of any part of it
    # (another search, the same one after a flag change) is answered from
    # memory; a search result is always part of the view.
    view = list(ctx.uids)
    if view != ordered:
        in_view = set(view)
        if not all(uid in in_view for uid in ordered):
            view = ordered
    order = await store.sort_uids(ctx.mailbox_id, named, view)
    sort_cache.remember_order(store, key, mark, view, order)
    if view is ordered or len(view) == len(ordered):
        return order
    keep = set(ordered)
    return [uid for uid in order if uid in keep]


async def sort_from_records(
    store: Store,
    ctx: SearchContext,
    criteria: Sequence[tuple[str, bool]],
    uids: Sequence[int],
) -> list[int]:
    """``sort`` computed from each message's record and facts (the
    reference the stored keys are tested against)."""
    names = [name.upper() for name, _reverse in criteria]
    functions = [_key_function(n) for n in names]
    ordered = sorted(set(uids))
    keys: dict[int, tuple[SortKey, ...]] = {}
    needs_records = bool(names)
    batch = _search.BATCH
    for i in range(0, len(ordered) if needs_records else 0, batch):
        for rec in await store.fetch_records(ctx.mailbox_id, ordered[i:i + batch]):
            cache: list[ParsedMessage] = []

            def parsed(rec: MessageRecord = rec, cache: list[ParsedMessage] = cache) -> ParsedMessage:
                if not cache:
                    cache.append(ParsedMessage.from_bytes(rec.facts))
                return cache[0]

            keys[rec.uid] = tuple(f(rec, parsed) for f in functions)
        await asyncio.sleep(0)   # let other connections run between batches
    # A message gone from the store since the client saw it sorts as empty.
    missing = tuple(_empty_key(n) for n in names)
    # Stable sorts from the last criterion to the first give the combined
    # order, with sequence order (= ascending UID) as the final tiebreak.
    for index in range(len(criteria) - 1, -1, -1):
        def criterion(uid: int, k: int = index) -> SortKey:
            return keys.get(uid, missing)[k]

        ordered.sort(key=criterion, reverse=criteria[index][1])
    return ordered
