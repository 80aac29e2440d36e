"""Ending the sessions of a revoked app password (docs/auth.md).

``mailbag app-password revoke`` runs in another process and only writes the
database, so the server has to notice. Each IMAP session records the
credential it logged in with (``Session.credential_id``: "app:<id>" for app
passwords). While at least one session of the server holds an app password,
one watcher task per server asks the store every ``[auth]
revocation_check`` seconds which of those ids are revoked, and closes their
sessions with a BYE (RFC 9051 §7.1.5). With no such session the watcher
stops, so a server without app-password logins does no polling at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from mailbag.log import log_event

log = logging.getLogger("mailbag.auth")

BYE = b"* BYE Credential revoked\r\n"

# One watcher per server context, by id (ServerContext is not hashable); the
# task holds the context, so the id cannot be reused while it is listed.
_watchers: dict[int, asyncio.Task[None]] = {}


def app_credential(app_password_id: int) -> str:
    return f"app:{app_password_id}"


def end_session(session: Any) -> None:
    """Say BYE and close the transport; the session's loop then ends (also
    when it waits in IDLE or mid-command: a revoked device loses access now)."""
    session.closing = True
    with contextlib.suppress(Exception):
        # POP3 sessions say it their own way (and so commit no DELE).
        session.writer.write(getattr(session, "REVOKED_BYE", BYE))
        session.writer.close()


def close_sessions_with_credential(sessions: Iterable[Any], credential: str) -> int:
    """End every session that logged in with ``credential``; how many."""
    doomed = [s for s in list(sessions) if getattr(s, "credential_id", None) == credential]
    for s in doomed:
        log_event(log, "session-ended", user=s.account.name if s.account else None,
                  rip=s.remote_ip, cred=credential, reason="revoked")
        end_session(s)
    return len(doomed)


def _app_ids(sessions: Iterable[Any]) -> set[int]:
    ids = set()
    for s in list(sessions):
        cred = getattr(s, "credential_id", None)
        if isinstance(cred, str) and cred.startswith("app:"):
            ids.add(int(cred[4:]))
    return ids


def watch(ctx: Any) -> None:
    """Make sure the watcher of ``ctx`` (a ServerContext) runs; call after a
    session logged in with an app password."""
    task = _watchers.get(id(ctx))
    if task is not None and not task.done():
        return
    task = asyncio.get_running_loop().create_task(_watch(ctx), name="revocation-watcher")
    _watchers[id(ctx)] = task
    task.add_done_callback(lambda t: _watchers.pop(id(ctx), None) if _watchers.get(id(ctx)) is t else None)


async def _watch(ctx: Any) -> None:
    interval = ctx.config.auth.revocation_check
    while not ctx.shutting_down:
        await asyncio.sleep(interval)
        ids = _app_ids(ctx.sessions)
        if not ids or ctx.shutting_down:
            return
        try:
            revoked = await ctx.store.revoked_app_passwords(sorted(ids))
        except Exception:  # noqa: BLE001 - store closing at shutdown: stop quietly
            return
        for app_id in sorted(revoked):
            close_sessions_with_credential(ctx.sessions, app_credential(app_id))
