"""QUOTA (RFC 9208): GETQUOTA (§4.1.1), GETQUOTAROOT (§4.1.2) and SETQUOTA
(§4.1.3), with the STORAGE resource (§5.1) in units of 1024 octets.

Each account has one quota root, named "" (the empty string), covering all
its mailboxes. Only an administrator sets a quota (``mailbag quota set``):
SETQUOTA is parsed but answered ``NO [NOPERM]``, and QUOTASET is not
advertised. An account without a limit has no quota root at all, so
GETQUOTAROOT lists none and GETQUOTA "" answers NO (§4.1.1: the root does
not exist). APPEND, COPY and MOVE refuse to go over the limit with
``NO [OVERQUOTA]`` (§4.3); the store checks that in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap.registry import AUTH, CommandError, Reply, command
from mailbag.store.api import Account
from mailbag.wire.quota_grammar import GetQuota, GetQuotaRoot, SetQuota
from mailbag.wire.values import astring, quoted_or_literal

if TYPE_CHECKING:
    from mailbag.imap.session import Session

ROOT = ""                 # the one quota root of an account
KIB = 1024                # STORAGE is counted in units of 1024 octets (§5.1)


def storage_kib(octets: int) -> int:
    """Usage rounded up: a 1-octet mailbox is not "0 KiB used"."""
    return -(-octets // KIB)


async def _current_account(s: Session) -> Account:
    """The account as stored now: an administrator may have changed the
    quota since this session logged in."""
    account = s.require_account()
    fresh = await s.store.get_account(account.name)
    return fresh if fresh is not None else account


async def _quota_line(s: Session, account: Account) -> bytes:
    assert account.quota_bytes is not None
    used = storage_kib(await s.store.quota_usage(account.id))
    # The limit is rounded down, so a client never believes it has room the
    # store would refuse.
    limit = account.quota_bytes // KIB
    return b"* QUOTA " + quoted_or_literal(ROOT.encode()) + b" (STORAGE %d %d)\r\n" % (used, limit)


@command(GetQuota, AUTH)
async def getquota(s: Session, cmd: GetQuota) -> Reply:
    account = await _current_account(s)
    if cmd.root != ROOT or account.quota_bytes is None:
        raise CommandError(f"No such quota root: {cmd.root!r}")
    s.send(await _quota_line(s, account))
    return Reply(text="GETQUOTA completed")


@command(GetQuotaRoot, AUTH)
async def getquotaroot(s: Session, cmd: GetQuotaRoot) -> Reply:
    info = await s.find_mailbox(cmd.mailbox)
    account = await _current_account(s)
    line = b"* QUOTAROOT " + astring(s.client_name(info.name))
    if account.quota_bytes is None:
        s.send(line + b"\r\n")
    else:
        s.send(line + b" " + quoted_or_literal(ROOT.encode()) + b"\r\n")
        s.send(await _quota_line(s, account))
    return Reply(text="GETQUOTAROOT completed")


@command(SetQuota, AUTH)
async def setquota(s: Session, cmd: SetQuota) -> Reply:
    raise CommandError("Quotas are set by the administrator (mailbag quota set)", "NOPERM")
