"""NOTIFY (RFC 5465 §3.1): NOTIFY SET [STATUS] replaces what the session is
told about unasked, NOTIFY NONE stops it. The syntax and the composition
rules answered with BAD are in wire/notify_grammar.py; the state and the
delivery of events in imap/notify_state.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap.notify_state import (
    MESSAGE_EVENTS,
    SUPPORTED,
    NotifyState,
    hub_for,
    status_for,
    stop,
)
from mailbag.imap.registry import AUTH, CommandError, Reply, command
from mailbag.wire.commands import Notify

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(Notify, AUTH)
async def notify(s: Session, cmd: Notify) -> Reply:
    if cmd.groups is None:
        stop(s)
        return Reply(text="NOTIFY completed")
    used = {e.name for g in cmd.groups for e in g.events}
    unsupported = sorted(used - set(SUPPORTED))
    if unsupported:
        # §3.1: NO, not BAD, and the code lists every event supported.
        raise CommandError(f"Unsupported NOTIFY event {unsupported[0]}",
                           "BADEVENT (" + " ".join(SUPPORTED) + ")")
    state = NotifyState(hub_for(s.store), s, cmd.groups)
    try:
        infos = await state.start(s)
    except BaseException:
        state.close()
        raise
    stop(s)
    s.notify = state
    if cmd.status:
        # §3.1: a STATUS for each mailbox with message events, before the
        # tagged OK; never for the selected mailbox (§6.1).
        sel = s.selected
        for info in infos:
            w = state.watches.get(info.id)
            if w is None or (sel is not None and sel.info.id == info.id):
                continue
            if w.events & MESSAGE_EVENTS:
                s.send(await status_for(s, info, w.events))
    return Reply(text="NOTIFY completed")
