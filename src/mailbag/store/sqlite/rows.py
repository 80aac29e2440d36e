"""Row <-> dataclass conversions and the column lists they rely on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbag.store import flags as flaglib
from mailbag.store.api import Account, MailboxInfo, MessageMeta, MessageRecord

ACCOUNT_COLS = "id, name, password_hash, quota_bytes, disabled"
MAILBOX_COLS = (
    "id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq,"
    " messages, unseen, deleted, size, noselect, recent_uid"
)
RECORD_COLS = (
    "mm.uid, mm.flags, mm.modseq, m.size, mm.internaldate, mm.internaldate_tz,"
    " mm.savedate, m.blob_id, m.facts, m.envelope, m.body, m.bodystructure"
)

Row = Sequence[Any]


def account(row: Row) -> Account:
    return Account(
        id=row[0],
        name=row[1],
        password_hash=row[2],
        quota_bytes=row[3],
        disabled=bool(row[4]),
    )


def mailbox(row: Row) -> MailboxInfo:
    return MailboxInfo(
        id=row[0],
        account_id=row[1],
        name=row[2],
        special_use=row[3],
        uidvalidity=row[4],
        uidnext=row[5],
        highestmodseq=row[6],
        messages=row[7],
        unseen=row[8],
        deleted=row[9],
        size=row[10],
        noselect=bool(row[11]),
        first_recent=row[12],
    )


def meta(row: Row) -> MessageMeta:
    return MessageMeta(uid=row[0], flags=flaglib.decode(row[1]), modseq=row[2])


def record(row: Row) -> MessageRecord:
    # Positional, in RECORD_COLS order: this runs once per row of every FETCH.
    return MessageRecord(row[0], flaglib.decode(row[1]), row[2], row[3], row[4], row[5],
                         row[6], row[7], row[8], row[9], row[10], row[11])


def to_stamp(when: datetime) -> tuple[int, int]:
    """(unix seconds, UTC offset in minutes); a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset() or timedelta(0)
    return int(when.timestamp()), int(offset.total_seconds() // 60)


