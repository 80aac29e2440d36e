"""IDLE (RFC 9051 §6.3.13, RFC 2177): changes are pushed as soon as the
store's change feed marks the selected mailbox dirty; nothing is polled.

An idling session waits on one future (imap/transport.py read_or_wake) and
a timer, no task of its own. When a change arrives, the sessions idling in
that mailbox are not woken one by one: one batch per mailbox asks the store
once (IndexCache.changes_since) and writes each session's untagged
responses directly, so telling 10,000 idlers costs one query and 10,000
socket writes. Sessions the batch cannot serve synchronously (a CONTEXT
search to re-run) are woken and update themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from mailbag.imap import context
from mailbag.imap.registry import AUTH, Reply, bad, command
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


async def _push(first: Session, index: MailboxIndex) -> None:
    sessions: list[Session] = []
    try:
        indexes = first.ctx.indexes
        await indexes.refresh(index)
        # Sessions that joined while the index was refreshed are served too.
        sessions = _batches.pop(index, [])
        t0 = time.perf_counter()
        answers: dict[int, Changes] = {}
        for s in sessions:
            sel = s.selected
            if s.idle_push is None or sel is None or sel.index is not index or not sel.dirty \
                    or context.active(s) or s.writer.is_closing():
                s.wake.set()          # not (or no longer) a plain idler: it updates itself
                continue
            changes = answers.get(sel.modseq)
            if changes is None:
                changes = answers[sel.modseq] = await indexes.changes_since(index, sel.modseq)
                await indexes.refresh(index, upto=changes.highestmodseq)
            if s.selected is not sel or s.idle_push is None:
                s.wake.set()          # left IDLE while the store was asked
                continue
            lines = s.apply_changes(changes, allow_expunge=True)
            if lines:
                s.writer.write(b"".join(lines))
            if sel.dirty:
                s.wake.set()          # more arrived meanwhile
        log.debug("idle-push sessions=%d ms=%.1f", len(sessions),
                  (time.perf_counter() - t0) * 1000)
    except Exception:  # noqa: BLE001 - the sessions must not be left unwoken
        log.exception("idle push failed")
        for s in sessions:
            s.wake.set()
    finally:
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
