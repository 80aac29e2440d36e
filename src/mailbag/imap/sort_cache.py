"""Per-process memory of recent SORT orders and THREAD trees (RFC 5256 §3,
RFC 5957 §3) of big mailboxes, so a webmail client that sorts on every page
view pays the store's query once, not per view.

Why it is safe without invalidation: a SORT key belongs to (mailbox id,
UIDVALIDITY, UID) and never changes; message content is immutable, the
internal date and size too, and flags are no SORT key. A UID that is gone
sorts with empty keys on every path (imap/sort.py) and never comes back.
So an order computed once for a set of UIDs, filtered to any subset of that
set, is the order the store would give that subset now, provided no message
of the set left the mailbox since (a message still in a session's view but
gone from the store sorts with empty keys): each entry keeps the mailbox's
``Store.expunge_mark`` read before its query and is used only while the mark
is unchanged (one tiny indexed query). Messages added since are simply not
covered, and the caller asks the store again. A THREAD tree depends on the
whole set, so it is reused only for exactly the same UIDs.

Bounded: a few entries per store (LRU), only for sets of at least
``MIN_UIDS`` messages; an order is two arrays of 8-byte UIDs.
"""

from __future__ import annotations

import weakref
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_UIDS = 2000          # smaller sets are cheap for the store to order
MAX_ENTRIES = 8          # per store: orders plus thread trees


@dataclass(slots=True)
class _Order:
    mark: int                # Store.expunge_mark when it was computed
    covered: array[int]      # the UIDs ordered, ascending
    order: array[int]        # the same UIDs in sort order


@dataclass(slots=True)
class _Trees:
    mark: int
    covered: array[int]
    roots: Any               # list[thread.Node]; never mutated after it is built


_Key = tuple[Any, ...]
_caches: weakref.WeakKeyDictionary[object, OrderedDict[_Key, _Order | _Trees]] = (
    weakref.WeakKeyDictionary())


def _cache(store: object) -> OrderedDict[_Key, _Order | _Trees]:
    c = _caches.get(store)
    if c is None:
        c = _caches[store] = OrderedDict()
    return c


def _remember(store: object, key: _Key, value: _Order | _Trees) -> None:
    c = _cache(store)
    c[key] = value
    c.move_to_end(key)
    while len(c) > MAX_ENTRIES:
        c.popitem(last=False)


def cached_order(store: object, key: _Key, mark: int,
                 ordered: Sequence[int]) -> list[int] | None:
    """The sort order of ``ordered`` (distinct, ascending UIDs) if a
    remembered order covers all of them; else None."""
    entry = _cache(store).get(key)
    if not isinstance(entry, _Order) or entry.mark != mark:
        return None
    wanted = array("q", ordered)
    if wanted == entry.covered:              # the usual case: SORT ... ALL
        _cache(store).move_to_end(key)
        return entry.order.tolist()
    if len(wanted) > len(entry.covered) or not _subset(wanted, entry.covered):
        return None
    _cache(store).move_to_end(key)
    keep = set(ordered)
    return [uid for uid in entry.order.tolist() if uid in keep]


def remember_order(store: object, key: _Key, mark: int, covered: Sequence[int],
                   order: Sequence[int]) -> None:
    if len(covered) >= MIN_UIDS:
        _remember(store, key, _Order(mark, array("q", covered), array("q", order)))


def cached_trees(store: object, key: _Key, mark: int, ordered: Sequence[int]) -> Any:
    entry = _cache(store).get(key)
    if isinstance(entry, _Trees) and entry.mark == mark and array("q", ordered) == entry.covered:
        _cache(store).move_to_end(key)
        return entry.roots
    return None


def remember_trees(store: object, key: _Key, mark: int, covered: Sequence[int],
                   roots: Any) -> None:
    if len(covered) >= MIN_UIDS:
        _remember(store, key, _Trees(mark, array("q", covered), roots))


def _subset(small: array[int], big: array[int]) -> bool:
    """Both ascending: every UID of ``small`` is in ``big``."""
    members = set(big.tolist())
    return all(uid in members for uid in small.tolist())
