"""CONTEXT=SEARCH and CONTEXT=SORT result updates (RFC 5267 §4.3, §4.4):
after SEARCH/SORT RETURN (UPDATE ...), the server keeps telling the client
how the result changes, with "* ESEARCH (TAG "t") [UID] ADDTO (pos set)" and
"REMOVEFROM (pos set)", until CANCELUPDATE or the mailbox is closed.

Each live context keeps its result as UIDs (sorted order for SORT). When the
mailbox view changed, the search is run again over the view and the
difference reported. For an unsorted SEARCH the position is 0 (RFC 5267
§4.3); for SORT it is the 1-based place in the result.

The session calls two hooks from Session.sync_updates:

* ``before_apply(session, changes, allow_expunge)`` before
  SelectedMailbox.apply: REMOVEFROM for matches being expunged, sent ahead
  of the EXPUNGE responses while their sequence numbers are still valid;
* ``after_apply(session)`` after the EXISTS/EXPUNGE/FETCH lines: ADDTO and
  REMOVEFROM for everything else (flag changes, new messages).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.imap.search import search
from mailbag.imap.selected import SelectedMailbox, compress_uids
from mailbag.imap.sort import sort
from mailbag.store.api import Changes
from mailbag.wire.commands import SearchKey

if TYPE_CHECKING:
    from mailbag.imap.session import Session

CAPABILITIES = ("CONTEXT=SEARCH", "CONTEXT=SORT")
# Live contexts per session; more answer OK [NOUPDATE] (RFC 5267 §4.3).
MAX_CONTEXTS = 8


@dataclass(eq=False)
class Context:
    tag: str
    uid: bool                                     # results as UIDs (UID SEARCH/SORT)
    key: SearchKey
    criteria: tuple[tuple[str, bool], ...] | None  # SORT criteria; None: SEARCH
    result: list[int]                             # UIDs; sort order for SORT
    seen: tuple[int, int] = (0, 0)                # (view modseq, size) last evaluated


@dataclass(eq=False)
class _State:
    selected: SelectedMailbox
    contexts: list[Context] = field(default_factory=list)


_STATES: weakref.WeakKeyDictionary[Session, _State] = weakref.WeakKeyDictionary()


def _live(s: Session) -> _State | None:
    state = _STATES.get(s)
    if state is None:
        return None
    if s.selected is not state.selected or not state.contexts:
        del _STATES[s]                            # mailbox closed: updates stop
        return None
    return state


def _signature(sel: SelectedMailbox) -> tuple[int, int]:
    return (sel.modseq, len(sel.uids))


def add(s: Session, ctx: Context) -> bool:
    """Start updating ``ctx``; False when the session has too many already."""
    sel = s.require_selected()
    state = _live(s)
    if state is None:
        state = _STATES[s] = _State(sel)
    state.contexts = [c for c in state.contexts if c.tag != ctx.tag]
    if len(state.contexts) >= MAX_CONTEXTS:
        return False
    ctx.seen = _signature(sel)
    state.contexts.append(ctx)
    return True


def start(s: Session, tag: str, uid: bool, key: SearchKey,
          criteria: tuple[tuple[str, bool], ...] | None, result: list[int]) -> None:
    """RETURN (UPDATE): keep the client's result current from now on."""
    if not add(s, Context(tag, uid, key, criteria, list(result))):
        s.untagged_ok("Too many result updates already", f'NOUPDATE "{tag}"')


def cancel(s: Session, tags: tuple[str, ...]) -> list[str]:
    """Stop the contexts with these tags; returns the tags that were not live."""
    state = _live(s)
    live = {c.tag for c in state.contexts} if state else set()
    if state is not None:
        state.contexts = [c for c in state.contexts if c.tag not in tags]
    return [t for t in tags if t not in live]


def active(s: Session) -> bool:
    return _live(s) is not None


def _line(ctx: Context, item: bytes) -> bytes:
    return (b'* ESEARCH (TAG "' + ctx.tag.encode() + b'")' + (b" UID" if ctx.uid else b"")
            + b" " + item + b"\r\n")


def _number(sel: SelectedMailbox, ctx: Context, uid: int) -> int | None:
    return uid if ctx.uid else sel.seq_of(uid)


def before_apply(s: Session, changes: Changes, allow_expunge: bool) -> list[bytes]:
    """REMOVEFROM for matches that ``changes`` expunges, numbered as the
    client still numbers them. Nothing when the expunges must wait."""
    state = _live(s)
    if state is None or not changes.expunged:
        return []
    sel = state.selected
    gone = {u for u in changes.expunged if sel.seq_of(u) is not None}
    if not gone or not allow_expunge:
        return []
    out: list[bytes] = []
    for ctx in state.contexts:
        removed = [u for u in ctx.result if u in gone]
        if removed:
            line = _removefrom(sel, ctx, removed)
            if line is not None:
                out.append(line)
            ctx.result = [u for u in ctx.result if u not in gone]
    return out


def _removefrom(sel: SelectedMailbox, ctx: Context, removed: list[int]) -> bytes | None:
    if ctx.criteria is None:
        nums = [n for u in removed if (n := _number(sel, ctx, u)) is not None]
        return _line(ctx, b"REMOVEFROM (0 " + compress_uids(nums) + b")") if nums else None
    # SORT: each removed message at its place in the list as it shrinks.
    gone = set(removed)
    pairs: list[bytes] = []
    place = 0
    for u in ctx.result:
        if u in gone:
            n = _number(sel, ctx, u)
            if n is not None:
                pairs.append(b"%d %d" % (place + 1, n))
            continue
        place += 1
    return _line(ctx, b"REMOVEFROM (" + b" ".join(pairs) + b")") if pairs else None


def _addto(sel: SelectedMailbox, ctx: Context, new_result: list[int],
           added: set[int]) -> bytes | None:
    if ctx.criteria is None:
        nums = [n for u in sorted(added) if (n := _number(sel, ctx, u)) is not None]
        return _line(ctx, b"ADDTO (0 " + compress_uids(nums) + b")") if nums else None
    pairs = [b"%d %d" % (i + 1, n) for i, u in enumerate(new_result)
             if u in added and (n := _number(sel, ctx, u)) is not None]
    return _line(ctx, b"ADDTO (" + b" ".join(pairs) + b")") if pairs else None


async def after_apply(s: Session) -> list[bytes]:
    """ADDTO/REMOVEFROM for every context whose result changed since it was
    last evaluated (the view's modseq or size moved)."""
    from mailbag.imap.commands.sort import search_context

    state = _live(s)
    if state is None:
        return []
    sel = state.selected
    sig = _signature(sel)
    stale = [c for c in state.contexts if c.seen != sig]
    if not stale:
        return []
    search_ctx = search_context(sel)
    out: list[bytes] = []
    for ctx in stale:
        ctx.seen = sig
        uids = await search(s.store, search_ctx, ctx.key)
        if ctx.criteria is not None:
            uids = await sort(s.store, search_ctx, list(ctx.criteria), uids)
        old = set(ctx.result)
        new = set(uids)
        removed = [u for u in ctx.result if u not in new]
        lines = [_removefrom(sel, ctx, removed) if removed else None,
                 _addto(sel, ctx, uids, new - old) if new - old else None]
        out.extend(line for line in lines if line is not None)
        ctx.result = uids
    return out
