"""SORT and UID SORT (RFC 5256 §3, RFC 5957 SORT=DISPLAY), their ESORT
results (RFC 5267 §3: RETURN MIN/MAX/ALL/COUNT, ALL in sort order), PARTIAL
and UPDATE of CONTEXT=SORT (RFC 5267 §4; updates in imap/context.py), SEARCHRES SAVE (RFC 5182 §2.4) and CONDSTORE MODSEQ
(RFC 7162 §3.1.5). Orderings live in imap/sort.py.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailbag.imap import context
from mailbag.imap.registry import SELECTED, CommandError, Reply, command
from mailbag.imap.search import SearchContext, search, search_with_modseq
from mailbag.imap.selected import SelectedMailbox
from mailbag.imap.sort import sort
from mailbag.wire.commands import (
    PartialRange,
    SearchAnd,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchOr,
    Sort,
)

if TYPE_CHECKING:
    from mailbag.imap.session import Session

CHARSETS = {"UTF-8", "US-ASCII"}


def check_charset(charset: str | None) -> None:
    if charset is not None and charset.upper() not in CHARSETS:
        raise CommandError("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")


def search_context(sel: SelectedMailbox) -> SearchContext:
    return SearchContext(
        mailbox_id=sel.info.id,
        uids=tuple(sel.uids),
        flags=sel.flags_map(),
        recent=frozenset(sel.recent),
        saved=sel.saved_search,
        now=datetime.now(UTC),
        uidvalidity=sel.info.uidvalidity,
    )


def uses_modseq(key: SearchKey) -> bool:
    if isinstance(key, SearchModseq):
        return True
    if isinstance(key, SearchNot):
        return uses_modseq(key.key)
    if isinstance(key, SearchOr):
        return uses_modseq(key.left) or uses_modseq(key.right)
    if isinstance(key, SearchAnd):
        return any(uses_modseq(k) for k in key.keys)
    return False


async def matching(s: Session, key: SearchKey) -> tuple[SearchContext, list[int], int | None]:
    """The search context, the UIDs matching ``key`` (ascending) and, when the
    key uses MODSEQ, their highest modseq (which also enables CONDSTORE)."""
    ctx = search_context(s.require_selected())
    if uses_modseq(key):
        s.enabled.add("CONDSTORE")
        uids, modseq = await search_with_modseq(s.store, ctx, key)
        return ctx, uids, modseq
    return ctx, await search(s.store, ctx, key), None


def ordered_set(values: Sequence[int]) -> bytes:
    """A sequence-set that keeps the order of ``values`` (RFC 5267 §3.2:
    ALL is in sort order): only ascending runs are joined into ranges."""
    if not values:
        return b""
    out: list[bytes] = []
    start = prev = values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = v
    out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)


def partial_item(values: Sequence[int], partial: PartialRange) -> bytes:
    """PARTIAL (first:last set-or-NIL) of RFC 5267 §4.4."""
    chosen = values[partial.first - 1:partial.last]
    return b"PARTIAL (%d:%d %s)" % (partial.first, partial.last,
                                    ordered_set(chosen) if chosen else b"NIL")


def saved_result(result: Sequence[int], opts: Collection[str]) -> list[int]:
    """What RETURN (SAVE ...) keeps as '$' (RFC 5182 §2.4): with only MIN
    and/or MAX asked for, just those messages; else the whole result."""
    asked = set(opts)
    if result and asked & {"MIN", "MAX"} and not asked & {"ALL", "COUNT", "PARTIAL"}:
        keep = set()
        if "MIN" in opts:
            keep.add(result[0])
        if "MAX" in opts:
            keep.add(result[-1])
        return sorted(keep)
    return sorted(result)


def esearch_line(tag: str, uid: bool, opts: Collection[str], values: Sequence[int],
                 render_all: Callable[[Sequence[int]], bytes], partial: PartialRange | None,
                 modseq: int | None) -> bytes:
    """`* ESEARCH (TAG "t") [UID] MIN/MAX/ALL/COUNT/PARTIAL/MODSEQ` for SEARCH
    and SORT (RFC 4731 §3.1, RFC 5267 §3.1, §4.4; RFC 7162 §3.1.5)."""
    parts = [b'* ESEARCH (TAG "' + tag.encode() + b'")']
    if uid:
        parts.append(b"UID")
    if "MIN" in opts and values:
        parts.append(b"MIN %d" % values[0])
    if "MAX" in opts and values:
        parts.append(b"MAX %d" % values[-1])
    if "ALL" in opts and values:
        parts.append(b"ALL " + render_all(values))
    if "COUNT" in opts:
        parts.append(b"COUNT %d" % len(values))
    if "PARTIAL" in opts and partial is not None:
        parts.append(partial_item(values, partial))
    if values and modseq is not None:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


def numbers(sel: SelectedMailbox, uids: Sequence[int], uid: bool) -> list[int]:
    if uid:
        return list(uids)
    return sel.seqs_of(uids)


@command(Sort, SELECTED, forbids_expunge=lambda cmd: not cmd.uid)
async def sort_command(s: Session, cmd: Sort) -> Reply:
    sel = s.require_selected()
    check_charset(cmd.charset)
    ctx, uids, modseq = await matching(s, cmd.key)
    criteria = tuple((c.key, c.reverse) for c in cmd.criteria)
    ordered = await sort(s.store, ctx, list(criteria), uids)
    values = numbers(sel, ordered, cmd.uid)
    if cmd.returns is None:
        # One str join: a 100,000-number line in ~5 ms instead of ~15.
        line = b"* SORT" + (" " + " ".join(map(str, values))).encode() if values else b"* SORT"
        if values and modseq is not None:
            line += b" (MODSEQ %d)" % modseq
        s.send(line + b"\r\n")
        return Reply(text="SORT completed")
    opts: set[str] = set[str](cmd.returns) - {"CONTEXT"}   # CONTEXT is only a hint (RFC 5267)
    update = "UPDATE" in opts
    opts.discard("UPDATE")
    if not opts and not update:
        opts = {"ALL"}
    if update:
        context.start(s, cmd.tag, cmd.uid, cmd.key, criteria, ordered)
    if "SAVE" in opts:
        sel.saved_search = saved_result(ordered, opts)
        opts.discard("SAVE")
        if not opts and not update:
            return Reply(text="SORT completed")
    s.send(esearch_line(cmd.tag, cmd.uid, opts, values, ordered_set, cmd.partial, modseq))
    return Reply(text="SORT completed")
