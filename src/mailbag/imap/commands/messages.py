"""Commands that change messages: STORE (RFC 9051 §6.4.6, RFC 7162 §3.1.3
UNCHANGEDSINCE/MODIFIED), COPY (§6.4.7), MOVE (§6.4.8, RFC 6851), EXPUNGE and
UID EXPUNGE (§6.4.3, §6.4.9, RFC 4315), with UIDPLUS response codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap.flags import client_flags
from mailbag.imap.registry import SELECTED, CommandError, Reply, bad, command
from mailbag.imap.selected import compress_uids, flags_str
from mailbag.store.api import FlagMode
from mailbag.wire.commands import Copy, Expunge, Move, Store

if TYPE_CHECKING:
    from mailbag.imap.session import Session

RECENT = frozenset({"\\Recent"})
MODES: dict[str, FlagMode] = {"+": "add", "-": "remove", "": "replace"}


def _writable(s: Session) -> None:
    if s.require_selected().readonly:
        raise CommandError("Mailbox is read-only", "READ-ONLY")


@command(Store, SELECTED, forbids_expunge=lambda cmd: not cmd.uid)
async def store(s: Session, cmd: Store) -> Reply:
    sel = s.require_selected()
    if not cmd.uid and sel.seq_out_of_range(cmd.set):
        raise bad("Invalid sequence number")
    _writable(s)
    flags = client_flags(cmd.flags, allow_recent=True)
    pairs = sel.resolve_pairs(cmd.set, cmd.uid)
    uids = [u for _, u in pairs]
    if cmd.unchangedsince is not None:
        s.enabled.add("CONDSTORE")
    result = await s.store.store_flags(sel.info.id, uids, MODES[cmd.mode], flags,
                                       cmd.unchangedsince)
    await s.own_changes(result.changed)
    modified = set(result.modified_uids)
    changed = {m.uid: m for m in result.changed}
    condstore = s.condstore
    lines: list[str] = []
    recent = sel.recent
    for seq, uid in pairs:
        if uid in modified:
            continue
        m = changed.get(uid)
        # .SILENT suppresses the echo, but under CONDSTORE the new MODSEQ of
        # a changed message is still sent (RFC 7162 §3.1.3).
        if cmd.silent and not (condstore and m is not None):
            continue
        if m is not None:
            new_flags, modseq = m.flags, m.modseq
        else:
            current, current_modseq = sel.flags_of(uid), sel.modseq_of(uid)
            if current is None or current_modseq is None:
                continue   # expunged meanwhile by another session
            new_flags, modseq = current, current_modseq
        # str formatting, encoded once: STORE 1:* echoes every message.
        # Under QRESYNC every FETCH response carries the UID (RFC 7162 §3.2.4).
        uid_item = f"UID {uid} " if cmd.uid or s.qresync else ""
        if cmd.silent:
            lines.append(f"* {seq} FETCH ({uid_item}MODSEQ ({modseq}))\r\n")
            continue
        if uid in recent:
            new_flags = new_flags | RECENT
        tail = f" MODSEQ ({modseq})" if condstore else ""
        lines.append(f"* {seq} FETCH ({uid_item}FLAGS ({flags_str(new_flags)}){tail})\r\n")
    s.send("".join(lines).encode("ascii", "replace"))
    if modified:
        if cmd.uid:
            ids = compress_uids(modified)
        else:
            ids = compress_uids(q for u in modified if (q := sel.seq_of(u)) is not None)
        return Reply(text="Some messages were modified", code="MODIFIED " + ids.decode())
    return Reply(text="STORE completed")


async def _destination(s: Session, raw: str) -> int:
    info = await s.find_mailbox(raw, code="TRYCREATE")
    return info.id


@command(Copy, SELECTED)
async def copy(s: Session, cmd: Copy) -> Reply:
    sel = s.require_selected()
    if not cmd.uid and sel.seq_out_of_range(cmd.set):
        raise bad("Invalid sequence number")
    dest = await _destination(s, cmd.mailbox)
    uids = sel.resolve(cmd.set, cmd.uid)
    if not uids:
        return Reply(text="No messages copied")
    result = await s.store.copy(sel.info.id, uids, dest)
    s.own_message_change(dest, result.highestmodseq)
    if dest == sel.info.id:
        sel.dirty = True
    code = (f"COPYUID {result.uidvalidity} {compress_uids(result.source_uids).decode()} "
            f"{compress_uids(result.dest_uids).decode()}")
    return Reply(text="COPY completed", code=code)


@command(Move, SELECTED)
async def move(s: Session, cmd: Move) -> Reply:
    sel = s.require_selected()
    if not cmd.uid and sel.seq_out_of_range(cmd.set):
        raise bad("Invalid sequence number")
    _writable(s)
    dest = await _destination(s, cmd.mailbox)
    uids = sel.resolve(cmd.set, cmd.uid)
    if not uids:
        return Reply(text="No messages moved")
    result = await s.store.move(sel.info.id, uids, dest)
    s.own_message_change(dest, result.highestmodseq)
    code = (f"COPYUID {result.uidvalidity} {compress_uids(result.source_uids).decode()} "
            f"{compress_uids(result.dest_uids).decode()}")
    # RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
    s.untagged_ok("Moved", code)
    sel.dirty = True
    s.own_expunges(result.source_uids)
    return Reply(text="MOVE completed")


@command(Expunge, SELECTED)
async def expunge(s: Session, cmd: Expunge) -> Reply:
    sel = s.require_selected()
    _writable(s)
    uids = sel.resolve(cmd.uids, True) if cmd.uids is not None else None
    if uids is not None and not uids:
        return Reply(text="EXPUNGE completed")
    gone = await s.store.expunge(sel.info.id, uids)
    sel.dirty = True
    s.own_expunges(gone)
    return Reply(text="EXPUNGE completed")
