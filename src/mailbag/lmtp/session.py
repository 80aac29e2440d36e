"""One LMTP connection (RFC 2033): LHLO, MAIL, RCPT, DATA with one reply per
accepted recipient (§4.2), RSET, NOOP, QUIT; VRFY and EXPN refused
(RFC 5321 §3.5.3 allows 502); PIPELINING (RFC 2920: replies to a batch of
commands go out together, flushed when the client's input runs dry),
CHUNKING (RFC 3030: BDAT, with one reply per recipient after BDAT LAST as
RFC 2033 §4.2 asks after DATA), SIZE (RFC 1870), 8BITMIME (RFC 6152),
SMTPUTF8 (RFC 6531) and ENHANCEDSTATUSCODES (RFC 2034).

Recipients are checked at RCPT (unknown user 550 5.1.1, over quota 552 5.2.2
or 452 4.2.2) so the MTA bounces early; the message is then stored once for
all of them through the store's ingest path (lmtp/delivery.py).

Pipelined transactions: a message is committed in the background while the
session goes on reading and answering the commands queued behind it, but
replies leave strictly in order (RFC 2920 §3.1): the output queue holds each
pending delivery, and nothing after it is written until its per-recipient
replies are known, i.e. until the commit is durable. After DATA the next
354 waits for the previous message, so a DATA client has one message in
flight; a BDAT client may send whole transactions back to back without
waiting (RFC 3030 §4.2), so up to MAX_IN_FLIGHT of its messages commit
together (the store's group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from mailbag.lmtp.addresses import Recipient, Resolver, Unknown
from mailbag.lmtp.codec import (
    Bdat,
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
# Deliveries of one session committing at once (BDAT pipelining); beyond it
# the session stops reading until the oldest is stored.
MAX_IN_FLIGHT = 64
_SENDER_OK = reply(250, "2.1.0", "Sender OK").encode()
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
        # Replies in order; a Task is a delivery whose replies are not known yet.
        self.out: deque[bytes | asyncio.Task[list[Reply]]] = deque()
        self.inflight: deque[asyncio.Task[list[Reply]]] = deque()
        self.write_soon = False       # write_delivered() is scheduled
        self.storing = 0              # deliveries whose replies are not known yet
        self.chunks: bytearray | None = None   # BDAT data of the transaction so far
        self.chunks_dropped = 0                 # BDAT octets beyond the size limit
        self.helo: str | None = None
        self.mail: Mail | None = None
        self.rcpts: list[Recipient] = []
        self.closing = False
        self.receiving = False        # reading a message after 354
        self.bad = 0

    @property
    def in_data(self) -> bool:
        """Reading or storing a message: shutdown lets it finish."""
        return self.receiving or self.chunks is not None or any(
            not t.done() for t in self.inflight)

    # --------------------------------------------------------------- output
    def send(self, r: Reply) -> None:
        self.out.append(r.encode())

    def write_ready(self) -> None:
        """Write the queued replies up to the first delivery still being
        committed; also run when a delivery completes."""
        ready: list[bytes] = []
        while self.out:
            item = self.out[0]
            if isinstance(item, bytes):
                ready.append(item)
            elif item.done():
                # Cancelled only when the server is going down: no reply.
                if not item.cancelled():
                    ready.extend(r.encode() for r in item.result())
            else:
                break
            self.out.popleft()
        if ready and not self.writer.is_closing():
            self.writer.write(b"".join(ready))

    def delivered(self, _task: asyncio.Task[list[Reply]]) -> None:
        """A delivery's replies are known. One group commit completes many
        deliveries at once: while others of this session are still pending
        their replies go out in one write at the end of this turn of the
        event loop, not one write (one syscall) each; the last one (and a
        DATA client's only one) is written at once."""
        self.storing -= 1
        if self.write_soon:
            return
        if self.storing:
            self.write_soon = True
            asyncio.get_running_loop().call_soon(self.write_delivered)
        else:
            self.write_ready()

    def write_delivered(self) -> None:
        self.write_soon = False
        self.write_ready()

    async def flush(self) -> None:
        """Write what is ready, without waiting for deliveries (their replies
        follow as each commit completes)."""
        self.write_ready()
        await self.writer.drain()

    async def flush_all(self) -> None:
        """Wait for every pending delivery, then write everything."""
        while self.inflight:
            await asyncio.wait([self.inflight.popleft()])
        await self.flush()

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
            await self.flush_all()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            # A client that went away mid-commit: let the commits finish (the
            # MTA retries what it got no reply for).
            for task in self.inflight:
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            self.ctx.sessions.discard(self)
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - best effort on a dying transport
                pass

    async def read_more(self) -> bool:
        try:
            # asyncio.timeout, not wait_for: no Task per read.
            async with asyncio.timeout(self.ctx.config.limits.idle_timeout):
                data = await self.reader.read(256 * 1024)
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
                if line[:5].upper() in (b"BDAT", b"BDAT "):
                    # The size of the chunk behind it is unknown: no way to
                    # find the next command (RFC 3030 §2 leaves this to us).
                    self.send(reply(421, "4.5.0", f"{self.ctx.hostname} Lost sync, closing"))
                    self.closing = True
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
        self.chunks = None
        self.chunks_dropped = 0

    # ------------------------------------------------------------- commands
    async def execute(self, cmd: Lhlo | Mail | Rcpt | Bdat | Simple) -> None:
        if isinstance(cmd, Lhlo):
            self.lhlo(cmd)
        elif isinstance(cmd, Mail):
            self.mail_from(cmd)
        elif isinstance(cmd, Rcpt):
            await self.rcpt_to(cmd)
        elif isinstance(cmd, Bdat):
            await self.bdat(cmd)
        elif cmd.verb == "DATA":
            await self.data()
        else:
            self.simple(cmd)

    def lhlo(self, cmd: Lhlo) -> None:
        self.helo = cmd.domain
        self.reset()
        size = self.ctx.config.lmtp.max_message_size
        self.send(Reply(250, "", self.ctx.hostname, (
            "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "CHUNKING",
            f"SIZE {size}",
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
        self.out.append(_SENDER_OK)

    async def rcpt_to(self, cmd: Rcpt) -> None:
        if self.mail is None:
            return self.reject(reply(503, "5.5.1", "Send MAIL first"))
        if self.chunks is not None:
            return self.reject(reply(503, "5.5.1", "RCPT after BDAT"))
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
        if rcpt.account.quota_bytes is not None and await over_quota(
                self.store, rcpt, self.mail.size or 0):
            q = quota_reply(self.ctx.config.lmtp.quota_tempfail)
            log_event(log, "lmtp-over-quota", session=self.id, rcpt=path.address,
                      user=rcpt.account.name)
            return self.send(Reply(q.code, q.status, f"<{path.address}> {q.text}"))
        self.rcpts.append(rcpt)
        # The common replies are written out directly: a message costs
        # three, and building a Reply and encoding it is most of their cost.
        self.out.append(b"250 2.1.5 <%s> OK\r\n" % path.address.encode("utf-8", "replace"))

    async def data(self) -> None:
        if self.mail is None:
            return self.reject(reply(503, "5.5.1", "Send MAIL first"))
        if not self.rcpts:
            # RFC 2033 §4.2: no valid recipient, no 354.
            return self.reject(reply(503, "5.5.1", "No valid recipients"))
        if self.chunks is not None:
            return self.reject(reply(503, "5.5.1", "DATA after BDAT (RFC 3030 §3)"))
        # Sent once the deliveries before it are answered; the client sends
        # the message only then, so there is nothing else to wait for here.
        self.send(reply(354, "", "Start mail input; end with <CRLF>.<CRLF>"))
        await self.flush()
        self.receiving = True
        try:
            await self.receive_and_deliver()
        finally:
            self.receiving = False

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
        await self.finish_message(body, reader.oversized)

    async def bdat(self, cmd: Bdat) -> None:
        """A chunk of the message (RFC 3030 §2); it is read whatever the
        reply, since the client sends it right behind the command."""
        limit = self.ctx.config.lmtp.max_message_size
        ok = self.mail is not None and bool(self.rcpts)
        have = len(self.chunks) if self.chunks is not None else 0
        keep = ok and not self.chunks_dropped and have + cmd.size <= limit
        self.receiving = True
        try:
            data = await self.read_chunk(cmd.size, keep)
        finally:
            self.receiving = False
        if data is None:
            self.closing = True          # dropped mid-chunk: nothing was accepted
            return
        if self.mail is None:
            return self.reject(reply(503, "5.5.1", "Send MAIL first"))
        if not self.rcpts:
            return self.reject(reply(503, "5.5.1", "No valid recipients"))
        if self.chunks is None:
            self.chunks = bytearray()
        if keep:
            self.chunks += data
        else:
            self.chunks_dropped += cmd.size
        if not cmd.last:
            return self.send(reply(250, "2.0.0", f"{cmd.size} octets received"))
        body, dropped = bytes(self.chunks), self.chunks_dropped
        await self.finish_message(body, dropped > 0)

    async def read_chunk(self, size: int, keep: bool) -> bytes | None:
        """``size`` octets from the client (kept only if ``keep``), or None
        when the connection ends first."""
        parts: list[bytes] = []
        need = size
        while need:
            if not self.inbuf.buf and not await self.read_more():
                return None
            take = self.inbuf.buf[:need]
            del self.inbuf.buf[:need]
            need -= len(take)
            if keep:
                parts.append(bytes(take))
        return b"".join(parts)

    async def finish_message(self, body: bytes, oversized: bool) -> None:
        """The end of DATA or BDAT LAST: store the message for the
        transaction's recipients; their replies take their place in order."""
        assert self.mail is not None
        limit = self.ctx.config.lmtp.max_message_size
        mail, rcpts = self.mail, self.rcpts
        self.reset()
        self.transactions += 1
        if oversized:
            for _ in rcpts:
                self.send(reply(552, "5.3.4", f"Message too big (limit {limit} octets)"))
            return
        env = Envelope(
            sender=mail.path.address, helo=self.helo or "unknown", peer=self.peer,
            hostname=self.ctx.hostname, session_id=f"{self.id}.{self.transactions}",
            protocol="UTF8LMTP" if mail.smtputf8 else "LMTP",
        )
        while len(self.inflight) >= MAX_IN_FLIGHT:
            await asyncio.wait([self.inflight.popleft()])
        # Committed in the background: the loop goes on with the commands
        # pipelined behind the message; write_ready() sends these replies in
        # their place once the commit is durable.
        task = asyncio.ensure_future(self.store_message(env, rcpts, body))
        self.storing += 1
        task.add_done_callback(self.delivered)
        self.inflight.append(task)
        self.out.append(task)
        while self.inflight and self.inflight[0].done():
            self.inflight.popleft()

    async def store_message(self, env: Envelope, rcpts: list[Recipient], body: bytes) -> list[Reply]:
        try:
            return await deliver(self.store, env, rcpts, body, datetime.now().astimezone(),
                                 quota_tempfail=self.ctx.config.lmtp.quota_tempfail)
        except Exception as exc:  # noqa: BLE001 - this transaction fails alone, the next goes on
            log_event(log, "lmtp-deliver-failed", level=logging.ERROR, session=env.session_id,
                      error=str(exc) or type(exc).__name__)
            return [reply(451, "4.3.0", "Temporary failure, try again later") for _ in rcpts]

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
            self.send(reply(214, "2.0.0", "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT"))
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
