"""IDLE (RFC 9051 §6.3.13, RFC 2177): changes are pushed as soon as the
store's change feed marks the selected mailbox dirty; nothing is polled.

An idling session waits on one future (imap/transport.py read_or_wake) and
a timer, no task of its own. When a change arrives, the sessions idling in
that mailbox are not woken one by one: one batch per mailbox asks the store
once (IndexCache.changes_since) and writes each session's untagged
responses directly, so telling 10,000 idlers costs one query and 10,000
socket writes. Sessions the batch cannot serve synchronously (a CONTEXT
search to re-run) are woken and update themselves.

The common change is a pure append: only messages newer than everything an
idler knows of, nothing it knows of expunged or re-flagged. Then the idler's
untagged responses are exactly "* n EXISTS" (RFC 9051 §7.4.1; no FETCH, so
CONDSTORE/QRESYNC make no difference, RFC 7162 §3.1.10), the same bytes for
every idler whose view has the same size, modseq and last UID. Such an
idler gets those pre-built bytes and a list extend instead of
SelectedMailbox.apply(); it is what apply() would do, \\Recent included
(only the first session to claim a message sees it as \\Recent, RFC 3501
§2.3.2). Everything else (own flag changes not yet caught up, expunges,
flag changes, CONTEXT searches) takes the general path.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbag.imap import context
from mailbag.imap.registry import AUTH, Reply, bad, command
from mailbag.imap.selected import SelectedMailbox
from mailbag.store.api import Changes
from mailbag.store.index import MailboxIndex
from mailbag.wire.commands import Idle, IdleDone, ProtocolError

if TYPE_CHECKING:
    from mailbag.imap.session import Session

log = logging.getLogger("mailbag.imap")

# Sessions waiting for the batch of their mailbox, by index (MailboxIndex
# hashes by identity).
_batches: dict[MailboxIndex, list[Session]] = {}


def _push_later(s: Session) -> None:
    sel = s.selected
    if sel is None:
        s.wake.set()
        return
    batch = _batches.get(sel.index)
    if batch is None:
        batch = _batches[sel.index] = []
        task = asyncio.get_running_loop().create_task(_push(s, sel.index))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
    batch.append(s)


_tasks: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class _Append:
    """What a pure append means for every idler whose view has one size,
    modseq and last UID: the same new UIDs and the same EXISTS line."""

    uids: tuple[int, ...]
    line: bytes
    keywords: frozenset[str]
    highestmodseq: int


def _append_plan(changes: Changes, size: int, last: int) -> _Append | None:
    """The shortcut for a view of *size* messages ending at UID *last*, or
    None when *changes* touch a message the view knows of (apply() needed)."""
    changed = changes.changed
    # Both tuples are in ascending UID order (store.api.Changes).
    if not changed or changed[0].uid <= last:
        return None
    if changes.expunged and changes.expunged[0] <= last:
        return None
    uids = tuple(m.uid for m in changed)
    keywords = frozenset(f for m in changed for f in m.flags if not f.startswith("\\"))
    return _Append(uids, b"* %d EXISTS\r\n" % (size + len(uids)), keywords,
                   changes.highestmodseq)


def _apply_append(sel: SelectedMailbox, plan: _Append, heard: int) -> None:
    """SelectedMailbox.apply() for a pure append, without re-deriving it;
    *heard* is the highest modseq the change feed announced to the session."""
    if not sel.readonly and sel.recent_from is None:
        # As Session.apply_changes: the first claimant takes the new
        # messages as \Recent; every later one claims nothing of them.
        sel.recent_from = sel.index.claim_recent()
    first = sel.recent_from
    if first is not None and first <= plan.uids[-1]:
        sel.recent.update(u for u in plan.uids if u >= first)
    sel.uids.extend(plan.uids)
    if plan.keywords:
        sel.keywords.update(plan.keywords)
    if plan.highestmodseq > sel.modseq:
        sel.modseq = plan.highestmodseq
    sel.recent_from = None
    # Announced while the shared answer was on its way: catch up later.
    sel.dirty = heard > sel.modseq


def _catch_up(told: list[tuple[Session, SelectedMailbox, _Append]]) -> int:
    """Fold each pure append into the view of the idler it was written to,
    in write order (the first claims the new messages as \\Recent)."""
    for s, sel, plan in told:
        _apply_append(sel, plan, s.heard)
        if sel.dirty:
            s.wake.set()              # more arrived meanwhile
    n = len(told)
    told.clear()
    return n


async def _push(first: Session, index: MailboxIndex) -> None:
    sessions: list[Session] = []
    # Idlers already sent their EXISTS, whose views are brought up to date
    # after the writes so that the last idler's bytes leave sooner; always
    # before any await, so that no command runs against a view older than
    # what its client was told.
    told: list[tuple[Session, SelectedMailbox, _Append]] = []
    # A full collection over the objects of 10,000 sessions takes hundreds
    # of milliseconds; not while they wait for their EXISTS.
    collecting = gc.isenabled()
    gc.disable()
    try:
        indexes = first.ctx.indexes
        await indexes.refresh(index)
        # Sessions that joined while the index was refreshed are served too.
        sessions = _batches.pop(index, [])
        t0 = time.perf_counter()
        answers: dict[int, Changes] = {}
        plans: dict[tuple[int, int, int], _Append | None] = {}
        fast = 0
        for s in sessions:
            sel = s.selected
            if s.idle_push is None or sel is None or sel.index is not index or not sel.dirty \
                    or context.active(s) or s.writer.is_closing() \
                    or (s.notify is not None and s.notify.selected_fetch):
                s.wake.set()          # not (or no longer) a plain idler: it updates itself
                continue
            changes = answers.get(sel.modseq)
            if changes is None:
                fast += _catch_up(told)
                changes = answers[sel.modseq] = await indexes.changes_since(index, sel.modseq)
                await indexes.refresh(index, upto=changes.highestmodseq)
            if s.selected is not sel or s.idle_push is None:
                s.wake.set()          # left IDLE while the store was asked
                continue
            if not sel.told:
                uids = sel.uids
                key = (sel.modseq, len(uids), uids[-1] if uids else 0)
                if key in plans:
                    plan = plans[key]
                else:
                    plan = plans[key] = _append_plan(changes, key[1], key[2])
                if plan is not None:
                    s.writer.write(plan.line)
                    told.append((s, sel, plan))
                    continue
            lines = s.apply_changes(changes, allow_expunge=True)
            if lines:
                s.writer.write(b"".join(lines))
            if sel.dirty:
                s.wake.set()          # more arrived meanwhile
        fast += _catch_up(told)
        log.debug("idle-push sessions=%d fast=%d ms=%.1f", len(sessions), fast,
                  (time.perf_counter() - t0) * 1000)
    except Exception:  # noqa: BLE001 - the sessions must not be left unwoken
        log.exception("idle push failed")
        with contextlib.suppress(Exception):
            _catch_up(told)
        for s in sessions:
            s.wake.set()
    finally:
        if collecting:
            gc.enable()
        if _batches.get(index) is not None and not sessions:
            for s in _batches.pop(index):
                s.wake.set()


@command(Idle, AUTH)
async def idle(s: Session, cmd: Idle) -> Reply:
    s.send(b"+ idling\r\n")
    await s.sync_updates(allow_expunge=True, force=True)
    await s.flush()
    s.parser.expect_idle_done()
    timeout = s.ctx.config.limits.idle_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    s.idle_push = _push_later
    try:
        while True:
            event = s.parser.next_event()
            if isinstance(event, IdleDone):
                return Reply(text="IDLE terminated")
            if isinstance(event, ProtocolError):
                raise bad("Expected DONE")
            if event is not None:
                raise bad("Expected DONE")
            if s.ctx.shutting_down or loop.time() >= deadline:
                s.send(b"* BYE Autologout; idle for too long\r\n"
                       if not s.ctx.shutting_down else b"* BYE Server shutting down\r\n")
                await s.flush()
                raise ConnectionResetError("idle timeout")
            if s.notify is not None and s.notify.has_pending(s, idle=True):
                # NOTIFY (RFC 5465 §4): in IDLE, the same events as between
                # commands (STATUS/LIST for other mailboxes, FETCH atts).
                await s.notify.deliver(s, idle=True)
                await s.flush()
                continue
            if s.selected is not None and s.selected.dirty:
                await s.sync_updates(allow_expunge=True)
                await s.flush()
                continue
            timer = loop.call_at(deadline, s.reader.poke)
            try:
                data = await s.reader.read_or_wake(65536)
            finally:
                timer.cancel()
            if data is None:
                continue               # woken: a change, shutdown or the deadline
            if not data:
                raise ConnectionResetError("client went away during IDLE")
            s.parser.feed(data)
    finally:
        s.idle_push = None
