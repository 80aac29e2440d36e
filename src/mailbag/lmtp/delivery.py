"""Final delivery, shared by the LMTP session and ``mailbag deliver``:
trace headers, quota checks, and one store call per message.

Trace headers (RFC 5321 §4.4): like Dovecot's LMTP, mailbag prepends
``Return-Path:`` (the envelope sender, since this is the final delivery),
``Delivered-To:`` and a ``Received:`` field. ``Delivered-To`` and the
``for <...>`` clause of ``Received`` name a recipient, so they are added only
when a message goes to ONE recipient: a message for 50 recipients keeps the
same bytes for all of them and is stored once (DESIGN.md rule 5). Dovecot
makes the same choice for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from mailbag.lmtp.addresses import Recipient
from mailbag.lmtp.codec import Reply, reply
from mailbag.log import log_event
from mailbag.store.api import AppendItem, AppendResult, OverQuota, Store, StoreError

log = logging.getLogger("mailbag.lmtp")


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str                    # "" for the null reverse-path
    helo: str                      # LHLO name, or "localhost" for mailbag deliver
    peer: str | None               # "[192.0.2.1]" for TCP, None for a local socket
    hostname: str                  # ours
    session_id: str
    protocol: str = "LMTP"         # "UTF8LMTP" with SMTPUTF8 (RFC 6531 §3.7.3)


def quota_reply(tempfail: bool) -> Reply:
    # RFC 3463: x.2.2 mailbox full. RFC 5321 §4.5.3.1.10 notes that senders
    # often treat 552 at RCPT as temporary anyway.
    if tempfail:
        return reply(452, "4.2.2", "Mailbox is full")
    return reply(552, "5.2.2", "Mailbox is full")


async def over_quota(store: Store, recipient: Recipient, incoming: int) -> bool:
    """True when ``incoming`` more octets do not fit (0: is it full already?).
    Uses the usage read with the recipient when there is one; the write job
    checks the quota again anyway (message_ops.check_quota)."""
    quota = recipient.account.quota_bytes
    if quota is None:
        return False
    used = recipient.quota_used
    if used is None:
        used = await store.quota_usage(recipient.account.id)
    return used + incoming > quota if incoming else used >= quota


_last_date: tuple[tuple[int, object], str] = ((0, None), "")


def _rfc5322_date(now: datetime) -> str:
    """format_datetime, computed once a second (it costs ~15 us, and a busy
    server stamps hundreds of messages within one)."""
    global _last_date
    key = (int(now.timestamp()), now.utcoffset())
    if _last_date[0] != key:
        _last_date = (key, format_datetime(now.replace(microsecond=0)))
    return _last_date[1]


def trace_headers(env: Envelope, recipients: Sequence[str], now: datetime) -> bytes:
    lines = [f"Return-Path: <{env.sender}>"]
    single = len(recipients) == 1
    if single:
        lines.append(f"Delivered-To: {recipients[0]}")
    received = f"Received: from {env.helo}"
    if env.peer:
        received += f" ({env.peer})"
    received += f"\r\n\tby {env.hostname} (mailbag) with {env.protocol}\r\n\tid {env.session_id}"
    if env.sender:
        received += f"\r\n\t(envelope-from <{env.sender}>)"
    if single:
        received += f"\r\n\tfor <{recipients[0]}>"
    received += f"; {_rfc5322_date(now)}"
    lines.append(received)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


async def deliver(
    store: Store,
    env: Envelope,
    recipients: Sequence[Recipient],
    body: bytes,
    now: datetime,
    *,
    quota_tempfail: bool = False,
) -> list[Reply]:
    """Store ``body`` (with trace headers) for every recipient; one reply
    each, in order. Recipients that share a mailbox (two aliases of one
    account) share one copy."""
    addresses = list(dict.fromkeys(r.address for r in recipients))
    raw = trace_headers(env, addresses, now) + body
    boxes = list(dict.fromkeys(r.mailbox_id for r in recipients))
    try:
        results = await store.deliver(boxes, AppendItem(raw, frozenset(), now))
    except Exception as exc:  # noqa: BLE001 - the MTA must retry, not lose the mail
        log_event(log, "lmtp-store-failed", level=logging.ERROR, session=env.session_id,
                  error=str(exc) or type(exc).__name__)
        return [reply(451, "4.3.0", "Temporary storage failure, try again later")
                for _ in recipients]
    by_box = dict(zip(boxes, results, strict=True))
    replies: list[Reply] = []
    for r in recipients:
        result = by_box[r.mailbox_id]
        replies.append(_reply_for(r, result, env, len(raw), quota_tempfail))
    return replies


def _reply_for(
    r: Recipient, result: AppendResult | StoreError, env: Envelope, size: int,
    quota_tempfail: bool,
) -> Reply:
    if isinstance(result, AppendResult):
        uid = result.uids[0]
        log_event(log, "lmtp-delivered", session=env.session_id, rcpt=r.address,
                  user=r.account.name, mailbox=r.mailbox, uid=uid, size=size)
        return reply(250, "2.0.0", f"<{r.address}> {env.session_id} Saved as UID {uid}")
    log_event(log, "lmtp-rejected", session=env.session_id, rcpt=r.address,
              user=r.account.name, mailbox=r.mailbox, reason=type(result).__name__)
    if isinstance(result, OverQuota):
        q = quota_reply(quota_tempfail)
        return Reply(q.code, q.status, f"<{r.address}> {q.text}")
    # The folder went away or became \Noselect between RCPT and DATA: retry.
    return reply(451, "4.2.0", f"<{r.address}> Mailbox unavailable, try again later")
