"""One POP3 connection (RFC 1939 §3 states, §4-§6; RFC 2595 §4 STLS;
RFC 2449 §8 response codes).

The session reads bytes into the sans-IO ``LineReader``, runs each command
through the registry and writes its response. Commands are executed one at a
time in the order received, so pipelined commands (RFC 2449 PIPELINING) work
without special handling.

Session end: QUIT in TRANSACTION state runs the UPDATE state (expunge the
DELE'd messages). Any other end - a dropped connection, autologout, server
shutdown - leaves DELE'd messages in place (RFC 1939 §6) but still writes
the \\Seen marks of messages the client retrieved (see maildrop.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.log import log_event
from mailbag.pop3 import auth as _auth  # noqa: F401 - registers handlers
from mailbag.pop3 import commands as _commands  # noqa: F401 - registers handlers
from mailbag.pop3.codec import BadCommand, Line, LineReader, TooLong, err, parse_command
from mailbag.pop3.maildrop import Maildrop, MaildropLocks, SizeCache
from mailbag.pop3.registry import COMMANDS, Pop3Error, State
from mailbag.store.api import Account, Store, StoreError
from mailbag.tls import unread_input

if TYPE_CHECKING:
    from mailbag.auth.authenticator import Authenticator
    from mailbag.config import Config

log = logging.getLogger("mailbag.pop3")

# After this many bad commands the client is confused or hostile: hang up
# (Dovecot does the same after 20).
MAX_BAD_COMMANDS = 20
WRITE_CHUNK = 64 * 1024


@dataclass
class Pop3Context:
    """What every POP3 session of one server shares."""

    config: Config
    store: Store
    authenticator: Authenticator
    tls_context: ssl.SSLContext | None
    sessions: set[Pop3Session] = field(default_factory=set)
    locks: MaildropLocks = field(default_factory=MaildropLocks)
    sizes: SizeCache = field(default_factory=SizeCache)
    shutting_down: bool = False


class Pop3Session:
    # What auth/revocation.py sends before closing a revoked device's session.
    REVOKED_BYE = b"-ERR [AUTH] Credential revoked\r\n"

    def __init__(
        self,
        ctx: Pop3Context,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls_active: bool,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.reader = reader
        self.writer = writer
        self.tls_active = tls_active
        peer = writer.get_extra_info("peername")
        self.remote_ip: str = peer[0] if isinstance(peer, tuple) else "local"
        self.lines = LineReader()
        self.state = State.AUTHORIZATION
        self.pending_user: str | None = None    # from USER, waiting for PASS
        self.account: Account | None = None
        self.credential_id: str | None = None
        self.maildrop: Maildrop | None = None
        self.out: list[bytes] = []
        self.closing = False
        self.busy = False
        self.bad_commands = 0
        self.retrieved_octets = 0

    # ----------------------------------------------------------- properties
    @property
    def secure(self) -> bool:
        """TLS is up, or the peer is loopback and secure_loopback is on (the
        same rule as IMAP's LOGINDISABLED)."""
        if self.tls_active:
            return True
        loopback = self.remote_ip in ("127.0.0.1", "::1") or self.remote_ip.startswith("127.")
        return loopback and self.ctx.config.secure_loopback

    def require_maildrop(self) -> Maildrop:
        if self.maildrop is None:  # pragma: no cover - the registry checks state
            raise Pop3Error("No maildrop open")
        return self.maildrop

    # --------------------------------------------------------------- output
    def send(self, data: bytes) -> None:
        self.out.append(data)

    async def flush(self) -> None:
        if self.out:
            self.writer.write(b"".join(self.out))
            self.out.clear()
        await self.writer.drain()

    async def send_large(self, data: bytes) -> None:
        """Write a big multi-line response in chunks, so a slow client holds
        back the sender instead of filling memory with a copy per chunk."""
        await self.flush()
        view = memoryview(data)
        for start in range(0, len(view), WRITE_CHUNK):
            self.writer.write(view[start:start + WRITE_CHUNK])
            await self.writer.drain()

    # ----------------------------------------------------------------- loop
    async def run(self) -> None:
        self.ctx.sessions.add(self)
        try:
            if self.ctx.shutting_down:
                self.send(err("Server shutting down", "SYS/TEMP"))
                await self.flush()
                return
            self.send(b"+OK mailbag POP3 ready\r\n")
            await self.flush()
            await self.loop()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            await self.end()

    async def end(self) -> None:
        self.ctx.sessions.discard(self)
        drop, account = self.maildrop, self.account
        self.maildrop = None
        if drop is not None and account is not None:
            try:
                # Retrieved messages were read, even without a QUIT.
                await drop.write_seen()
            except Exception as exc:  # noqa: BLE001 - e.g. the store closed at shutdown
                log_event(log, "pop3-seen-failed", level=logging.WARNING,
                          user=account.name, error=str(exc) or type(exc).__name__)
            self.ctx.locks.release(account.id)
            if self.state is State.TRANSACTION:
                log_event(log, "pop3-disconnect", user=account.name, rip=self.remote_ip,
                          retrieved_octets=self.retrieved_octets)
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - best effort on a dying transport
            pass

    async def read_more(self) -> bool:
        limits = self.ctx.config.limits
        # RFC 1939 §3: an inactivity autologout timer of at least 10 minutes;
        # idle_timeout (>= 30 min by default) satisfies that.
        timeout = (limits.preauth_timeout if self.state is State.AUTHORIZATION
                   else limits.idle_timeout)
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except TimeoutError:
            # No UPDATE state on autologout (RFC 1939 §3): DELEs are dropped.
            self.send(err("Autologout; idle for too long"))
            await self.flush()
            return False
        if not data:
            return False
        self.lines.feed(data)
        return True

    async def read_line(self) -> bytes | None:
        """The next client line (SASL responses); None on EOF or a too-long line."""
        while True:
            event = self.lines.next_event()
            if event is None:
                if not await self.read_more():
                    return None
                continue
            if isinstance(event, TooLong):
                return None
            return event.data

    async def loop(self) -> None:
        while not self.closing:
            event = self.lines.next_event()
            if event is None:
                if not await self.read_more():
                    return
                continue
            if isinstance(event, TooLong):
                await self.reject(f"Line too long (limit {event.limit} octets)")
            else:
                await self.execute(event)
            if self.ctx.shutting_down and not self.closing:
                self.send(err("Server shutting down", "SYS/TEMP"))
                await self.flush()
                return

    async def reject(self, text: str, code: str | None = None) -> None:
        self.bad_commands += 1
        self.send(err(text, code))
        if self.bad_commands >= MAX_BAD_COMMANDS:
            self.send(err("Too many bad commands; closing the connection"))
            self.closing = True
        await self.flush()

    async def execute(self, line: Line) -> None:
        try:
            cmd = parse_command(line.data)
        except BadCommand as exc:
            await self.reject(str(exc))
            return
        entry = COMMANDS.get(cmd.name)
        if entry is None:
            await self.reject(f"Unknown command {cmd.name}")
            return
        if self.state not in entry.states:
            await self.reject(f"{cmd.name} is not valid in the {self.state.value} state")
            return
        self.busy = True
        try:
            await entry.handler(self, cmd)
        except Pop3Error as exc:
            self.send(err(exc.text, exc.code))
        except StoreError as exc:
            log_event(log, "pop3-store-error", level=logging.WARNING,
                      command=cmd.name, error=str(exc))
            self.send(err("Temporary storage problem; try again later", "SYS/TEMP"))
        except (ConnectionError, ssl.SSLError):
            raise
        except Exception:
            log.exception("pop3 command failed: %s", cmd.name)
            self.send(err("Internal error; the command was not completed", "SYS/TEMP"))
        finally:
            self.busy = False
        await self.flush()

    # ----------------------------------------------------------- transitions
    async def start_tls(self) -> None:
        assert self.ctx.tls_context is not None
        # Anything pipelined after STLS came in clear text and must not be
        # executed as if it had come over TLS (RFC 2595 §4).
        self.lines.discard_buffer()
        # ...and what the socket delivered beyond the last read, still in the
        # StreamReader (a client can send more than one read takes).
        unread = unread_input(self.reader)
        if unread is not None:
            unread.clear()
        await self.writer.start_tls(self.ctx.tls_context)
        self.tls_active = True

    async def enter_transaction(self, account: Account, mech: str) -> None:
        """Lock and open the maildrop after a successful login (RFC 1939 §4)."""
        if not self.ctx.locks.acquire(account.id):
            log_event(log, "pop3-in-use", user=account.name, rip=self.remote_ip)
            raise Pop3Error("Maildrop is locked by another POP3 session", "IN-USE")
        try:
            drop = await Maildrop.open(self.store, account.id, self.ctx.sizes)
        except StoreError as exc:
            self.ctx.locks.release(account.id)
            log_event(log, "pop3-maildrop-failed", level=logging.WARNING,
                      user=account.name, error=str(exc))
            raise Pop3Error("Cannot open the maildrop; try again later", "SYS/TEMP") from None
        except BaseException:
            self.ctx.locks.release(account.id)
            raise
        self.account, self.maildrop = account, drop
        self.state = State.TRANSACTION
        self.pending_user = None
        count, size = drop.stat()
        log_event(log, "login", user=account.name, rip=self.remote_ip, proto="pop3", mech=mech,
                  tls="yes" if self.tls_active else "no", messages=count)
        self.send(f"+OK Logged in; maildrop has {count} messages ({size} octets)\r\n".encode())


async def shutdown_sessions(ctx: Pop3Context) -> None:
    """Server shutdown: idle sessions are told and closed now (without the
    UPDATE state); a busy one finishes its command first (Pop3Session.loop)."""
    ctx.shutting_down = True
    for session in list(ctx.sessions):
        if not session.busy:
            try:
                session.writer.write(err("Server shutting down", "SYS/TEMP"))
                session.writer.close()
            except Exception:  # noqa: BLE001 - best effort on a dying transport
                pass
