"""Row <-> dataclass conversions and the column lists they rely on."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
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
    return MessageRecord(
        uid=row[0],
        flags=flaglib.decode(row[1]),
        modseq=row[2],
        size=row[3],
        internaldate=from_stamp(row[4], row[5]),
        savedate=from_stamp(row[6], 0),
        blob_id=row[7],
        facts=bytes(row[8]),
        envelope=bytes(row[9]),
        body=bytes(row[10]),
        bodystructure=bytes(row[11]),
    )


def to_stamp(when: datetime) -> tuple[int, int]:
    """(unix seconds, UTC offset in minutes); a naive datetime is taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = when.utcoffset() or timedelta(0)
    return int(when.timestamp()), int(offset.total_seconds() // 60)


@functools.lru_cache(maxsize=256)
def _zone(offset_minutes: int) -> timezone:
    # A mailbox has a handful of distinct UTC offsets: one object each.
    return timezone(timedelta(minutes=offset_minutes))


def from_stamp(seconds: int, offset_minutes: int) -> datetime:
    return datetime.fromtimestamp(seconds, _zone(offset_minutes))
