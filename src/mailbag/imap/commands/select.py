"""SELECT and EXAMINE (RFC 9051 §6.3.2-6.3.3, RFC 3501 §6.3.1 for the rev1
responses, RFC 7162 §3.1.2 CONDSTORE parameter and HIGHESTMODSEQ, §3.2.5
the QRESYNC parameter, §3.2.11 [CLOSED]), CLOSE (§6.4.1), UNSELECT (§6.4.2,
RFC 3691).

A QRESYNC resync costs what changed: one store query by modseq (the
indexed ``changes_since``), then work per changed or expunged message only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailbag.imap.commands.mailboxes import mailbox_id
from mailbag.imap.registry import AUTH, SELECTED, Reply, State, bad, command
from mailbag.imap.selected import SelectedMailbox, seq_match_samples
from mailbag.log import log_event
from mailbag.wire.commands import Close, Select, Unselect

if TYPE_CHECKING:
    from mailbag.imap.session import Session

log = logging.getLogger("mailbag.imap")

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def deselect(s: Session, send_closed: bool = True) -> None:
    if s.selected is not None and send_closed:
        s.send(b"* OK [CLOSED] Previous mailbox closed\r\n")
    s.deselect()


def flags_line(keywords: set[str]) -> bytes:
    return ("* FLAGS (" + " ".join([*SYSTEM_FLAGS, *sorted(keywords)]) + ")\r\n").encode()


@command(Select, AUTH)
async def select(s: Session, cmd: Select) -> Reply:
    qresync = cmd.qresync
    samples: list[tuple[int, int]] = []
    if qresync is not None:
        # Checked before anything changes: a BAD command leaves the
        # selected mailbox as it was (RFC 7162 §3.2.5).
        if not s.qresync:
            raise bad("QRESYNC parameter needs ENABLE QRESYNC first")
        if qresync.seq_match is not None:
            try:
                samples = seq_match_samples(*qresync.seq_match)
            except ValueError as exc:
                raise bad(f"Invalid QRESYNC seq-match-data: {exc}") from None
    # A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
    had = s.selected is not None
    deselect(s, send_closed=had)
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
    s.untagged_ok("Mailbox id", f"MAILBOXID ({mailbox_id(info)})")   # RFC 8474 §4.2
    # The index may have seen appends that came after `info` was read.
    uidnext = max(info.uidnext, view.uids[-1] + 1 if view.uids else 1)
    s.untagged_ok("Predicted next UID", f"UIDNEXT {uidnext}")
    s.untagged_ok("Highest", f"HIGHESTMODSEQ {view.modseq}")
    s.selected = view
    s.state = State.SELECTED
    if qresync is not None and qresync.uidvalidity == info.uidvalidity:
        # Only for the same UIDVALIDITY: with another one the client's cache
        # is void and it gets the plain SELECT answer (RFC 7162 §3.2.5.1).
        try:
            changes = await s.store.changes_since(info.id, qresync.modseq)
        except BaseException:
            s.deselect()
            raise
        lines = view.resync(qresync, samples, changes)
        for line in lines:
            s.send(line)
        log_event(log, "qresync", mailbox=info.id, since=qresync.modseq,
                  changed=len(changes.changed), expunged=len(changes.expunged),
                  sent=len(lines), level=logging.DEBUG)
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
