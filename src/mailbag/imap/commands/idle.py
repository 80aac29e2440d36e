"""IDLE (RFC 9051 §6.3.13, RFC 2177): changes are pushed as soon as the
store's change feed marks the selected mailbox dirty; nothing is polled.

An idling session waits on one future (imap/transport.py read_or_wake) and
a timer, no task of its own. While it waits it belongs to its mailbox's
idle group, which stands in the mailbox index's watchers for all of its
members: a change costs one watcher call and one task, which asks the store
once (IndexCache.changes_since) and writes each member's untagged responses
directly, so telling 10,000 idlers costs one query and 10,000 socket
writes (shared with a helper thread: imap/fanout.py). A session that is
woken (client input, the deadline, a change it must handle itself) leaves
the group until it waits again; sessions the group cannot serve
synchronously (a CONTEXT search to re-run, NOTIFY FETCH attributes) never
join it.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.imap import context
from mailbag.imap.fanout import Fanout
from mailbag.imap.registry import AUTH, Reply, bad, command
from mailbag.imap.selected import SelectedMailbox
from mailbag.store.api import Changes
from mailbag.store.index import IndexCache, MailboxIndex
from mailbag.wire.commands import Idle, IdleDone, ProtocolError

if TYPE_CHECKING:
    from mailbag.imap.session import Session

log = logging.getLogger("mailbag.imap")


@dataclass(eq=False, slots=True)
class _Group:
    """The sessions waiting in IDLE on one mailbox index. The group, not
    each session, is the index's watcher: a change costs one call and one
    task however many sessions idle there."""

    index: MailboxIndex
    indexes: IndexCache
    fanout: Fanout
    members: dict[Session, None] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    again: bool = False        # a change arrived while the push was running

    def on_change(self, mailbox_id: int, modseq: int) -> None:
        if self.task is not None:
            self.again = True
            return
        self.task = asyncio.get_running_loop().create_task(_push(self))


_groups: dict[MailboxIndex, _Group] = {}


def _join(s: Session) -> _Group | None:
    """Hand *s* to its mailbox's group while it waits, or None when it must
    update itself (a CONTEXT search to re-run, NOTIFY FETCH attributes)."""
    sel = s.selected
    if sel is None or context.active(s) or s.snapshot or (
            s.notify is not None and s.notify.selected_fetch):
        # A snapshot (NOTIFY without message events for the selected
        # mailbox, RFC 5465 §3.1, §4) is sent nothing: not an idler here.
        return None
    index = sel.index
    group = _groups.get(index)
    if group is None:
        group = _groups[index] = _Group(index, s.ctx.indexes, s.ctx.fanout)
        index.watchers.add(group.on_change)
    index.watchers.discard(s.on_store_change)
    group.members[s] = None
    return group


def _leave(s: Session, group: _Group) -> None:
    group.members.pop(s, None)
    sel = s.selected
    if sel is not None and sel.index is group.index:
        sel.index.watchers.add(s.on_store_change)
        # Announced to the group and not yet written to this session.
        if group.index.target > sel.modseq:
            sel.dirty = True
            s.heard = max(s.heard, group.index.target)
    if not group.members and group.task is None:
        _drop(group)


def _drop(group: _Group) -> None:
    group.index.watchers.discard(group.on_change)
    if _groups.get(group.index) is group:
        del _groups[group.index]


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


def _apply_append(sel: SelectedMailbox, plan: _Append) -> None:
    """SelectedMailbox.apply() for a pure append, without re-deriving it."""
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
    sel.dirty = False


def _catch_up(told: list[tuple[SelectedMailbox, _Append]]) -> int:
    """Fold each pure append into the view of the idler it was written to,
    in write order (the first claims the new messages as \\Recent)."""
    for sel, plan in told:
        _apply_append(sel, plan)
    n = len(told)
    told.clear()
    return n


async def _push(group: _Group) -> None:
    """Tell every member of *group* what changed, until no change is left
    that arrived while it ran."""
    # Idlers already sent their EXISTS, whose views are brought up to date
    # after the writes (imap/fanout.py) so that the last idler's bytes leave
    # sooner; always before any await, so that no command runs against a
    # view older than what its client was told.
    told: list[tuple[SelectedMailbox, _Append]] = []
    # A full collection over the objects of 10,000 sessions takes hundreds
    # of milliseconds; not while they wait for their EXISTS.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while True:
            group.again = False
            await group.indexes.refresh(group.index)
            await _pass(group, told)
            if not group.again:
                break
    except Exception:  # noqa: BLE001 - the sessions must not be left unwoken
        log.exception("idle push failed")
        with contextlib.suppress(Exception):
            _catch_up(told)
        for s in list(group.members):
            s.wake.set()
    finally:
        if collecting:
            gc.enable()
        group.task = None
        if not group.members:
            _drop(group)


async def _pass(group: _Group, told: list[tuple[SelectedMailbox, _Append]]) -> None:
    index, indexes = group.index, group.indexes
    target = index.target
    members = list(group.members)
    t0 = time.perf_counter()
    answers: dict[int, Changes] = {}
    plans: dict[tuple[int, int, int], _Append | None] = {}
    out = group.fanout.batch()
    fast = 0
    try:
        for s in members:
            sel = s.selected
            if sel is None or sel.index is not index:
                s.wake.set()              # no longer a plain idler: it updates itself
                continue
            since = sel.modseq
            if since >= target:
                continue
            changes = answers.get(since)
            if changes is None:
                out.finish()
                fast += _catch_up(told)
                changes = answers[since] = await indexes.changes_since(index, since)
                await indexes.refresh(index, upto=changes.highestmodseq)
                if s not in group.members or s.selected is not sel or sel.modseq != since:
                    continue              # left IDLE while the store was asked
            if not sel.told:
                uids = sel.uids
                key = (since, len(uids), uids[-1] if uids else 0)
                if key in plans:
                    plan = plans[key]
                else:
                    plan = plans[key] = _append_plan(changes, key[1], key[2])
                if plan is not None:
                    out.add(s.writer, plan.line)
                    told.append((sel, plan))
                    continue
            s.heard = max(s.heard, target)
            lines = s.apply_changes(changes, allow_expunge=True)
            if lines:
                out.add(s.writer, b"".join(lines))
            if sel.dirty:
                s.wake.set()              # more arrived meanwhile: it updates itself
    finally:
        # Even when something above failed: the helper must be done
        # with these connections before the event loop goes on.
        out.finish()
    fast += _catch_up(told)
    log.debug("idle-push sessions=%d fast=%d ms=%.1f", len(members), fast,
              (time.perf_counter() - t0) * 1000)


@command(Idle, AUTH)
async def idle(s: Session, cmd: Idle) -> Reply:
    s.send(b"+ idling\r\n")
    await s.sync_updates(allow_expunge=True, force=True)
    await s.flush()
    s.parser.expect_idle_done()
    timeout = s.ctx.config.limits.idle_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
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
        if s.selected is not None and s.selected.dirty and not s.snapshot:
            await s.sync_updates(allow_expunge=True)
            await s.flush()
            continue
        group = _join(s)
        timer = loop.call_at(deadline, s.reader.poke)
        try:
            data = await s.reader.read_or_wake(65536)
        finally:
            timer.cancel()
            if group is not None:
                _leave(s, group)
        if data is None:
            continue               # woken: a change, shutdown or the deadline
        if not data:
            raise ConnectionResetError("client went away during IDLE")
        s.parser.feed(data)
