"""Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE
(RFC 9051 §6.3.4-6.3.8), CREATE-SPECIAL-USE (RFC 6154 §3), NAMESPACE
(RFC 2342, RFC 9051 §6.3.10) and STATUS (RFC 9051 §6.3.11, STATUS=SIZE,
CONDSTORE HIGHESTMODSEQ RFC 7162 §3.1.8, APPENDLIMIT RFC 7889 §3.2, MAILBOXID
RFC 8474 §4, DELETED-STORAGE RFC 9208 §4.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap import names
from mailbag.imap.capabilities import append_limit
from mailbag.imap.registry import AUTH, CommandError, Reply, bad, command
from mailbag.store.api import INBOX, SEPARATOR, MailboxInfo
from mailbag.wire.commands import Create, Delete, Namespace, Rename, Status, Subscribe, Unsubscribe
from mailbag.wire.values import astring

if TYPE_CHECKING:
    from mailbag.imap.session import Session

SPECIAL_USE = {"\\ALL", "\\ARCHIVE", "\\DRAFTS", "\\FLAGGED", "\\JUNK", "\\SENT", "\\TRASH"}
VIRTUAL_USE = {"\\ALL", "\\FLAGGED"}
STATUS_ITEMS = {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
                "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID", "DELETED-STORAGE"}


def mailbox_id(info: MailboxInfo) -> str:
    """MAILBOXID (RFC 8474 §4): the row id never changes on RENAME and is
    never reused (AUTOINCREMENT); the UIDVALIDITY part makes a mailbox
    re-created in the place of a deleted one (a kept placeholder row, see
    store/sqlite/mailbox_ops.create_mailbox) a new object, as §4.1 requires."""
    return f"F{info.id:x}-{info.uidvalidity:x}"


def _new_name(s: Session, raw: str) -> str:
    name = s.mailbox_name(raw)
    try:
        return names.validate_new(name)
    except names.BadName as exc:
        raise CommandError(str(exc), "CANNOT") from exc


@command(Create, AUTH)
async def create(s: Session, cmd: Create) -> Reply:
    name = _new_name(s, cmd.mailbox)
    if name == INBOX:
        raise CommandError("INBOX always exists", "ALREADYEXISTS")
    use: str | None = None
    if cmd.special_use:
        if len(cmd.special_use) > 1:
            raise CommandError("Only one special-use attribute per mailbox", "USEATTR")
        attr = cmd.special_use[0]
        if attr.upper() not in SPECIAL_USE:
            raise CommandError(f"Unsupported special-use attribute {attr}", "USEATTR")
        if attr.upper() in VIRTUAL_USE:
            # RFC 6154 §2: \All and \Flagged name virtual views of other
            # mailboxes; a plain mailbox marked so would mislead clients.
            raise CommandError(f"{attr} names a virtual mailbox, which mailbag has not",
                               "USEATTR")
        use = "\\" + attr[1:].capitalize()
    await s.store.create_mailbox(s.require_account().id, name, use)
    return Reply(text="CREATE completed")


@command(Delete, AUTH)
async def delete(s: Session, cmd: Delete) -> Reply:
    name = s.mailbox_name(cmd.mailbox)
    if name == INBOX:
        raise CommandError("INBOX cannot be deleted", "CANNOT")
    sel = s.selected
    await s.store.delete_mailbox(s.require_account().id, name)
    if sel is not None and sel.info.name == name:
        # RFC 9051 §6.3.4 allows deleting the selected mailbox; the client
        # then has nothing selected.
        from mailbag.imap.commands.select import deselect

        deselect(s, send_closed=False)
    return Reply(text="DELETE completed")


@command(Rename, AUTH)
async def rename(s: Session, cmd: Rename) -> Reply:
    old = s.mailbox_name(cmd.old)
    new = _new_name(s, cmd.new)
    if new == INBOX:
        raise CommandError("Cannot rename to INBOX", "ALREADYEXISTS")
    if new == old:
        raise CommandError("Mailbox already has that name", "ALREADYEXISTS")
    if new.startswith(old + SEPARATOR):
        raise CommandError("Cannot rename a mailbox into itself", "CANNOT")
    await s.store.rename_mailbox(s.require_account().id, old, new)
    return Reply(text="RENAME completed")


@command(Subscribe, AUTH)
async def subscribe(s: Session, cmd: Subscribe) -> Reply:
    name = s.mailbox_name(cmd.mailbox)
    if await s.store.get_mailbox(s.require_account().id, name) is None:
        raise CommandError(f"Mailbox does not exist: {cmd.mailbox}", "NONEXISTENT")
    await s.store.set_subscribed(s.require_account().id, name, True)
    return Reply(text="SUBSCRIBE completed")


@command(Unsubscribe, AUTH)
async def unsubscribe(s: Session, cmd: Unsubscribe) -> Reply:
    name = s.mailbox_name(cmd.mailbox)
    await s.store.set_subscribed(s.require_account().id, name, False)
    return Reply(text="UNSUBSCRIBE completed")


@command(Namespace, AUTH)
async def namespace(s: Session, cmd: Namespace) -> Reply:
    s.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
    return Reply(text="NAMESPACE completed")


async def _recent(s: Session, info: MailboxInfo) -> int:
    """Messages no session has claimed yet; the in-memory index may have
    claimed more than the store has recorded."""
    index = s.ctx.indexes.peek(info)
    first = max(info.first_recent, index.first_recent if index is not None else 0)
    return await s.store.count_from(info.id, first)


async def status_line(s: Session, info: MailboxInfo, items: tuple[str, ...]) -> bytes:
    values: list[str] = []
    for item in items:
        if item == "MESSAGES":
            n = info.messages
        elif item == "UIDNEXT":
            n = info.uidnext
        elif item == "UIDVALIDITY":
            n = info.uidvalidity
        elif item == "UNSEEN":
            n = info.unseen
        elif item == "DELETED":
            n = info.deleted
        elif item == "SIZE":
            n = info.size
        elif item == "RECENT":
            n = await _recent(s, info)
        elif item == "HIGHESTMODSEQ":
            n = info.highestmodseq
        elif item == "APPENDLIMIT":
            n = append_limit(s)
        elif item == "MAILBOXID":
            values.append(f"MAILBOXID ({mailbox_id(info)})")
            continue
        elif item == "DELETED-STORAGE":
            # In the unit of the STORAGE quota resource, 1024 octets.
            n = -(-await s.store.deleted_size(info.id) // 1024) if info.deleted else 0
        else:  # pragma: no cover - validated by the caller
            continue
        values.append(f"{item} {n}")
    name = astring(s.client_name(info.name))
    return b"* STATUS " + name + b" (" + " ".join(values).encode() + b")\r\n"


def check_status_items(items: tuple[str, ...]) -> None:
    for item in items:
        if item not in STATUS_ITEMS:
            raise bad(f"Unknown STATUS item {item}")


@command(Status, AUTH)
async def status(s: Session, cmd: Status) -> Reply:
    check_status_items(cmd.items)
    info = await s.find_mailbox(cmd.mailbox)
    if s.selected is not None and s.selected.info.id == info.id:
        # The client's own view must not jump ahead of what it was told.
        await s.sync_updates(allow_expunge=True)
    s.send(await status_line(s, info, cmd.items))
    return Reply(text="STATUS completed")
