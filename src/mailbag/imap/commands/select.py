"""SELECT and EXAMINE (RFC 9051 §6.3.2-6.3.3, RFC 3501 §6.3.1 for the rev1
responses, RFC 7162 §3.1.2 CONDSTORE parameter and HIGHESTMODSEQ), CLOSE
(§6.4.1), UNSELECT (§6.4.2, RFC 3691).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap.registry import AUTH, SELECTED, CommandError, Reply, State, command
from mailbag.imap.selected import SelectedMailbox
from mailbag.wire.commands import Close, Select, Unselect

if TYPE_CHECKING:
    from mailbag.imap.session import Session

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def deselect(s: Session, send_closed: bool = True) -> None:
    if s.selected is not None and send_closed:
        s.send(b"* OK [CLOSED] Previous mailbox closed\r\n")
    s.deselect()


def flags_line(keywords: set[str]) -> bytes:
    return ("* FLAGS (" + " ".join([*SYSTEM_FLAGS, *sorted(keywords)]) + ")\r\n").encode()


@command(Select, AUTH)
async def select(s: Session, cmd: Select) -> Reply:
    # A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
    had = s.selected is not None
    deselect(s, send_closed=had)
    if cmd.qresync is not None:
        raise CommandError("QRESYNC is not enabled", "CLIENTBUG")
    info = await s.find_mailbox(cmd.mailbox)
    if cmd.condstore:
        s.enabled.add("CONDSTORE")
    index = await s.ctx.indexes.open(info)
    view = SelectedMailbox.open(info, cmd.readonly, index)
    s.send(b"* %d EXISTS\r\n" % view.exists)
    if not s.rev2:
        s.send(b"* %d RECENT\r\n" % len(view.recent))
    s.send(flags_line(view.keywords))
    perm = " ".join([*SYSTEM_FLAGS, *sorted(view.keywords), "\\*"])
    s.untagged_ok("Flags permitted", f"PERMANENTFLAGS ({perm})" if not cmd.readonly
                  else "PERMANENTFLAGS ()")
    if not s.rev2:
        first_unseen = index.first_unseen()
        if first_unseen is not None:
            s.untagged_ok("First unseen", f"UNSEEN {first_unseen + 1}")
    s.untagged_ok("UIDs valid", f"UIDVALIDITY {info.uidvalidity}")
    # The index may have seen appends that came after `info` was read.
    uidnext = max(info.uidnext, view.uids[-1] + 1 if view.uids else 1)
    s.untagged_ok("Predicted next UID", f"UIDNEXT {uidnext}")
    s.untagged_ok("Highest", f"HIGHESTMODSEQ {view.modseq}")
    s.selected = view
    s.state = State.SELECTED
    mode = "READ-ONLY" if cmd.readonly else "READ-WRITE"
    return Reply(text=f"{'EXAMINE' if cmd.readonly else 'SELECT'} completed", code=mode)


@command(Close, SELECTED)
async def close(s: Session, cmd: Close) -> Reply:
    sel = s.require_selected()
    if not sel.readonly:
        # CLOSE expunges silently (RFC 9051 §6.4.1).
        await s.store.expunge(sel.info.id)
    deselect(s, send_closed=False)
    return Reply(text="CLOSE completed")


@command(Unselect, SELECTED)
async def unselect(s: Session, cmd: Unselect) -> Reply:
    deselect(s, send_closed=False)
    return Reply(text="UNSELECT completed")
