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
        # §3.1: "NOTIFY NONE specifies that the client is not interested in
        # any kind of event happening on the server": the selected mailbox
        # becomes a snapshot too (Session.snapshot).
        stop(s)
        s.selected_events = frozenset()
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
    # §3.1: no SELECTED/SELECTED-DELAYED group "is the same as specifying
    # SELECTED NONE".
    s.selected_events = state.selected_events
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
    # §3.1: "A successful NOTIFY SET command MUST cause the server to
    # immediately return any accumulated changes to the currently selected
    # mailbox (if any), such as flag changes and new or expunged messages.
    # Thus, a successful NOTIFY SET command implies an implicit NOOP
    # command": also what a snapshot held back, also when the new set
    # makes another one.
    await s.sync_updates(allow_expunge=True, force=True, implicit_noop=True)
    return Reply(text="NOTIFY completed")
