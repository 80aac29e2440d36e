"""One LMTP connection (RFC 2033): LHLO, MAIL, RCPT, DATA with one reply per
accepted recipient (§4.2), RSET, NOOP, QUIT; VRFY and EXPN refused
(RFC 5321 §3.5.3 allows 502); PIPELINING (RFC 2920: replies to a batch of
commands go out together, flushed when the client's input runs dry),
SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531) and
ENHANCEDSTATUSCODES (RFC 2034).

Recipients are checked at RCPT (unknown user 550 5.1.1, over quota 552 5.2.2
or 452 4.2.2) so the MTA bounces early; the message is then stored once for
all of them through the store's ingest path (lmtp/delivery.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from mailbag.lmtp.addresses import Recipient, Resolver, Unknown
from mailbag.lmtp.codec import (
    DataReader,
    InputBuffer,
    Lhlo,
    Mail,
    Rcpt,
    Reply,
    Simple,
    SyntaxProblem,
    TooLong,
    parse_command,
    reply,
)
from mailbag.lmtp.delivery import Envelope, deliver, over_quota, quota_reply
from mailbag.log import log_event
from mailbag.store.api import Store

if TYPE_CHECKING:
    from mailbag.config import Config

log = logging.getLogger("mailbag.lmtp")

MAX_BAD_COMMANDS = 20           # then hang up, like Postfix's smtpd_hard_error_limit
_ids = itertools.count(1)


@dataclass
class LmtpContext:
    """What every LMTP session of one server shares."""

    config: Config
    store: Store
    hostname: str = ""
    sessions: set[LmtpSession] = field(default_factory=set)
    shutting_down: bool = False
    resolver: Resolver = field(init=False)

    def __post_init__(self) -> None:
        self.resolver = Resolver(self.store, self.config.lmtp)
        if not self.hostname:
            self.hostname = self.config.lmtp.hostname or socket.gethostname()


def _peer_is_self(sock: socket.socket | None) -> bool:
    """A Unix-socket peer running as our own user (or root): `mailbag
    deliver` may then choose the folder (X-FOLDER)."""
    if sock is None or sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return False
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid in (0, os.getuid())


class LmtpSession:
    def __init__(
        self, ctx: LmtpContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"[{peer[0]}]" if isinstance(peer, tuple) else None
        self.trusted = _peer_is_self(writer.get_extra_info("socket"))
        self.id = f"{os.getpid():x}.{next(_ids):x}"
        self.transactions = 0
        self.inbuf = InputBuffer()
        self.out: list[bytes] = []
        self.helo: str | None = None
        self.mail: Mail | None = None
        self.rcpts: list[Recipient] = []
        self.closing = False
        self.in_data = False          # reading or storing a message
        self.bad = 0

    # --------------------------------------------------------------- output
    def send(self, r: Reply) -> None:
        self.out.append(r.encode())

    async def flush(self) -> None:
        if self.out:
            self.writer.write(b"".join(self.out))
            self.out.clear()
        await self.writer.drain()

    # ----------------------------------------------------------------- loop
    async def run(self) -> None:
        self.ctx.sessions.add(self)
        try:
            if self.ctx.shutting_down:
                self.send(reply(421, "4.3.2", f"{self.ctx.hostname} Shutting down"))
            else:
                self.send(reply(220, "", f"{self.ctx.hostname} mailbag LMTP ready"))
                await self.flush()
                await self.loop()
            await self.flush()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.ctx.sessions.discard(self)
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - best effort on a dying transport
                pass

    async def read_more(self) -> bool:
        try:
            data = await asyncio.wait_for(
                self.reader.read(256 * 1024), self.ctx.config.limits.idle_timeout
            )
        except TimeoutError:
            self.send(reply(421, "4.4.2", f"{self.ctx.hostname} Timeout, closing"))
            return False
        if not data:
            return False
        self.inbuf.feed(data)
        return True

    async def loop(self) -> None:
        while not self.closing:
            if not self.inbuf.has_line():
                # PIPELINING: answer the whole batch at once, when the client
                # has nothing more queued (RFC 2920 §3.1).
                await self.flush()
                if self.ctx.shutting_down:
                    self.send(reply(421, "4.3.2", f"{self.ctx.hostname} Shutting down"))
                    return
            line = self.inbuf.next_line()
            if line is None:
                if not await self.read_more():
                    return
                continue
            if isinstance(line, TooLong):
                self.reject(reply(500, "5.5.2", f"Line too long (limit {line.limit} octets)"))
                continue
            try:
                cmd = parse_command(line)
            except SyntaxProblem as exc:
                self.reject(exc.reply)
                continue
            await self.execute(cmd)

    def reject(self, r: Reply) -> None:
        self.send(r)
        self.bad += 1
        if self.bad >= MAX_BAD_COMMANDS:
            self.send(reply(421, "4.7.0", f"{self.ctx.hostname} Too many errors"))
            self.closing = True

    def reset(self) -> None:
        self.mail = None
        self.rcpts = []

    # ------------------------------------------------------------- commands
    async def execute(self, cmd: Lhlo | Mail | Rcpt | Simple) -> None:
        if isinstance(cmd, Lhlo):
            self.lhlo(cmd)
        elif isinstance(cmd, Mail):
            self.mail_from(cmd)
        elif isinstance(cmd, Rcpt):
            await self.rcpt_to(cmd)
        elif cmd.verb == "DATA":
            await self.data()
        else:
            self.simple(cmd)

    def lhlo(self, cmd: Lhlo) -> None:
        self.helo = cmd.domain
        self.reset()
        size = self.ctx.config.lmtp.max_message_size
        self.send(Reply(250, "", self.ctx.hostname, (
            "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", f"SIZE {size}",
        )))

    def mail_from(self, cmd: Mail) -> None:
        if self.helo is None:
            return self.reject(reply(503, "5.5.1", "Send LHLO first"))
        if self.mail is not None:
            return self.reject(reply(503, "5.5.1", "Nested MAIL command"))
        limit = self.ctx.config.lmtp.max_message_size
        if cmd.size is not None and cmd.size > limit:
            return self.send(reply(552, "5.3.4", f"Message too big (limit {limit} octets)"))
        self.mail = cmd
        self.send(reply(250, "2.1.0", "Sender OK"))

    async def rcpt_to(self, cmd: Rcpt) -> None:
        if self.mail is None:
            return self.reject(reply(503, "5.5.1", "Send MAIL first"))
        path = cmd.path
        if not path.is_ascii and not self.mail.smtputf8:
            return self.send(reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"))
        if len(self.rcpts) >= self.ctx.config.lmtp.max_recipients:
            return self.send(reply(452, "4.5.3", "Too many recipients"))
        folder = cmd.folder if self.trusted else None
        if cmd.folder is not None and not self.trusted:
            return self.send(reply(550, "5.7.1", "X-FOLDER is only for mailbag deliver"))
        try:
            rcpt = await self.ctx.resolver.resolve(path.address, path.local, path.domain, folder)
        except Unknown as exc:
            log_event(log, "lmtp-unknown", session=self.id, rcpt=path.address,
                      reason=exc.text)
            return self.send(reply(550, exc.status, f"<{path.address}> {exc.text}"))
        if await over_quota(self.store, rcpt, self.mail.size or 0):
            q = quota_reply(self.ctx.config.lmtp.quota_tempfail)
            log_event(log, "lmtp-over-quota", session=self.id, rcpt=path.address,
                      user=rcpt.account.name)
            return self.send(Reply(q.code, q.status, f"<{path.address}> {q.text}"))
        self.rcpts.append(rcpt)
        self.send(reply(250, "2.1.5", f"<{path.address}> OK"))

    async def data(self) -> None:
        if self.mail is None:
            return self.reject(reply(503, "5.5.1", "Send MAIL first"))
        if not self.rcpts:
            # RFC 2033 §4.2: no valid recipient, no 354.
            return self.reject(reply(503, "5.5.1", "No valid recipients"))
        self.send(reply(354, "", "Start mail input; end with <CRLF>.<CRLF>"))
        await self.flush()
        self.in_data = True
        try:
            await self.receive_and_deliver()
        finally:
            self.in_data = False

    async def receive_and_deliver(self) -> None:
        assert self.mail is not None
        limit = self.ctx.config.lmtp.max_message_size
        reader = DataReader(limit)
        while True:
            body = reader.feed_from(self.inbuf)
            if body is not None:
                break
            if not await self.read_more():
                # The connection dropped mid-message: nothing was accepted.
                self.closing = True
                return
        mail, rcpts = self.mail, self.rcpts
        self.reset()
        self.transactions += 1
        if reader.oversized:
            for _ in rcpts:
                self.send(reply(552, "5.3.4", f"Message too big (limit {limit} octets)"))
            return
        env = Envelope(
            sender=mail.path.address, helo=self.helo or "unknown", peer=self.peer,
            hostname=self.ctx.hostname, session_id=f"{self.id}.{self.transactions}",
            protocol="UTF8LMTP" if mail.smtputf8 else "LMTP",
        )
        replies = await deliver(self.store, env, rcpts, body, datetime.now().astimezone(),
                                quota_tempfail=self.ctx.config.lmtp.quota_tempfail)
        for r in replies:
            self.send(r)

    def simple(self, cmd: Simple) -> None:
        verb = cmd.verb
        if verb == "RSET":
            self.reset()
            self.send(reply(250, "2.0.0", "OK"))
        elif verb == "NOOP":
            self.send(reply(250, "2.0.0", "OK"))
        elif verb == "QUIT":
            self.send(reply(221, "2.0.0", f"{self.ctx.hostname} Bye"))
            self.closing = True
        elif verb in ("VRFY", "EXPN"):
            # Account names are not for anyone who can reach the socket.
            self.send(reply(502, "5.5.1", f"{verb} command is disabled"))
        elif verb in ("HELO", "EHLO"):
            self.reject(reply(500, "5.5.1", "This is LMTP: use LHLO (RFC 2033 §4.1)"))
        elif verb == "HELP":
            self.send(reply(214, "2.0.0", "Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT"))
        else:
            self.reject(reply(500, "5.5.2", f"Unknown command {verb[:20]!r}"))


async def shutdown_sessions(ctx: LmtpContext, *, force: bool = False) -> None:
    """Stop taking commands: sessions waiting for a command get 421 now; a
    message being received or stored is finished first (its loop checks
    ``shutting_down`` afterwards). ``force``: close those too (after the
    grace period; the MTA retries a message it got no reply for)."""
    ctx.shutting_down = True
    for s in list(ctx.sessions):
        if force or not s.in_data:
            try:
                s.writer.write(reply(421, "4.3.2", f"{ctx.hostname} Shutting down").encode())
                s.writer.close()
            except Exception:  # noqa: BLE001 - best effort on a dying transport
                pass
