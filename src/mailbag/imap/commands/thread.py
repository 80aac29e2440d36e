"""THREAD and UID THREAD (RFC 5256 §3 command, §4 "thread-data" response).
The algorithms live in imap/thread.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap import thread as threading
from mailbag.imap.commands.sort import check_charset, matching
from mailbag.imap.registry import SELECTED, Reply, bad, command
from mailbag.wire.commands import Thread

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(Thread, SELECTED, forbids_expunge=lambda cmd: not cmd.uid)
async def thread_command(s: Session, cmd: Thread) -> Reply:
    sel = s.require_selected()
    if cmd.algorithm not in threading.ALGORITHMS:
        raise bad(f"Unknown threading algorithm {cmd.algorithm}")
    check_charset(cmd.charset)
    ctx, uids, _modseq = await matching(s, cmd.key)
    roots = await threading.threads(s.store, ctx.mailbox_id, ctx.uidvalidity, cmd.algorithm,
                                    uids)

    def number(uid: int) -> int:
        if cmd.uid:
            return uid
        seq = sel.seq_of(uid)
        return seq if seq is not None else 0

    data = threading.render(roots, number)
    s.send(b"* THREAD" + (b" " + data if data else b"") + b"\r\n")
    return Reply(text="THREAD completed")
