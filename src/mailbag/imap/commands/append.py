"""APPEND (RFC 9051 §6.3.12), MULTIAPPEND (RFC 3502), CATENATE (RFC 4469,
assembled in imap/catenate.py), APPENDUID (RFC 4315)
and literal8 message data (RFC 3516 §4.4).

Every APPEND goes through the store's single ingest path; the tagged OK is
sent only after the message is durable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailbag.imap.catenate import assemble
from mailbag.imap.flags import client_flags
from mailbag.imap.registry import AUTH, CommandError, Reply, command
from mailbag.imap.selected import compress_uids
from mailbag.store.api import AppendItem
from mailbag.wire.commands import Append, CatenateText

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(Append, AUTH)
async def append(s: Session, cmd: Append) -> Reply:
    info = await s.find_mailbox(cmd.mailbox, code="TRYCREATE")
    items: list[AppendItem] = []
    for msg in cmd.messages:
        data, binary = msg.data, msg.binary
        if msg.parts is not None:                  # CATENATE (RFC 4469)
            data = await assemble(s, msg.parts)
            binary = not all(isinstance(p, CatenateText) and not p.binary for p in msg.parts)
        if not data:
            raise CommandError("Empty message", "CANNOT")
        if b"\x00" in data and not binary:
            # NUL is only allowed in literal8 (RFC 3516 §4.4).
            raise CommandError("NUL in message data; use a literal8", "CANNOT")
        date = msg.internaldate
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
        items.append(AppendItem(data, client_flags(msg.flags, allow_recent=True),
                                date or datetime.now(UTC)))
    result = await s.store.append(info.id, items)
    s.own_message_change(info.id, result.highestmodseq)
    if s.selected is not None and s.selected.info.id == info.id:
        s.selected.dirty = True
    code = f"APPENDUID {result.uidvalidity} {compress_uids(result.uids).decode()}"
    return Reply(text="APPEND completed", code=code)
