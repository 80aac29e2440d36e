"""IDLE (RFC 9051 §6.3.13, RFC 2177): changes are pushed as soon as the
store's change feed marks the selected mailbox dirty; nothing is polled.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailbag.imap.registry import AUTH, Reply, bad, command
from mailbag.wire.commands import Idle, IdleDone, ProtocolError

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(Idle, AUTH)
async def idle(s: Session, cmd: Idle) -> Reply:
    s.send(b"+ idling\r\n")
    await s.sync_updates(allow_expunge=True, force=True)
    await s.flush()
    s.parser.expect_idle_done()
    timeout = s.ctx.config.limits.idle_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = s.parser.next_event()
        if isinstance(event, IdleDone):
            return Reply(text="IDLE terminated")
        if isinstance(event, ProtocolError):
            raise bad("Expected DONE")
        if event is not None:
            raise bad("Expected DONE")
        s.wake.clear()
        read = asyncio.ensure_future(s.reader.read(65536))
        woken = asyncio.ensure_future(s.wake.wait())
        try:
            done, _ = await asyncio.wait(
                {read, woken}, timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            woken.cancel()
        if read in done:
            data = read.result()
            if not data:
                raise ConnectionResetError("client went away during IDLE")
            s.parser.feed(data)
        else:
            read.cancel()
            if not done or s.ctx.shutting_down:
                s.send(b"* BYE Autologout; idle for too long\r\n"
                       if not s.ctx.shutting_down else b"* BYE Server shutting down\r\n")
                await s.flush()
                raise ConnectionResetError("idle timeout")
        if s.selected is not None and s.selected.dirty:
            await s.sync_updates(allow_expunge=True)
            await s.flush()
