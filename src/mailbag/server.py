"""Listeners, TLS contexts and shutdown: IMAP on the STARTTLS port (RFC 9051
§6.2.1) and implicit TLS (RFC 8314 §3.3), POP3 with STLS (RFC 2595) and on
implicit TLS, connection caps, SIGTERM graceful
shutdown (finish the command in flight, say BYE, close) and SIGHUP
certificate reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from mailbag.auth.authenticator import Authenticator
from mailbag.auth.passwords import PasswordHasher
from mailbag.config import Config
from mailbag.imap import commands as _commands  # noqa: F401 - registers handlers
from mailbag.imap.registry import State
from mailbag.imap.session import ServerContext, Session
from mailbag.imap.transport import Connection
from mailbag.lmtp.listeners import LmtpListeners, start_lmtp
from mailbag.log import configure_logging, log_event
from mailbag.pop3.registry import State as Pop3State
from mailbag.pop3.session import Pop3Context, Pop3Session, shutdown_sessions
from mailbag.store.sqlite import SqliteStore
from mailbag.tls import TlsError, ensure_certificate, server_context

log = logging.getLogger("mailbag.server")

SHUTDOWN_GRACE = 10.0


def _awaiting_command(session: Session) -> bool:
    """Whether the session sits between commands, blocked reading the next
    one: only then can BYE go out without cutting off a command (an APPEND
    of a big message counts from its first byte) or overtaking its tagged
    reply."""
    if session.busy or session.inflight:
        return False
    parser = session.parser
    # CommandParser has no public "between commands" flag: a command line
    # waiting for its literal leaves segments behind, a literal being read or
    # skipped leaves bytes remaining.
    if (parser.buffered or getattr(parser, "_segments", None)
            or getattr(parser, "_remaining", 0)):
        return False
    # Set while StreamReader.read() waits for data: the session is in its
    # read, not in the tail of a command (sending updates, the tagged reply).
    return getattr(session.reader, "_waiter", None) is not None


def _preauth_expired(session: Session, ip: str) -> None:
    """[limits] preauth_timeout has passed since the connection opened: a
    client that has not logged in by now is cut off, however busily it sends."""
    if session.state is not State.NOT_AUTHENTICATED or session.closing:
        return
    log_event(log, "preauth-timeout", rip=ip)
    with contextlib.suppress(Exception):
        session.writer.write(b"* BYE Autologout; took too long to log in\r\n")
        session.writer.close()


def _pop3_preauth_expired(session: Pop3Session, ip: str) -> None:
    if session.state is not Pop3State.AUTHORIZATION or session.closing:
        return
    log_event(log, "preauth-timeout", rip=ip, proto="pop3")
    with contextlib.suppress(Exception):
        session.writer.write(b"-ERR Autologout; took too long to log in\r\n")
        session.writer.close()


# New messages wait for the SEARCH index until the writer is idle, or until
# this many are waiting (store/sqlite/writer.py, "Deferred indexing"): a
# burst of deliveries is not held up by the index, and SEARCH scans at most
# this many unindexed messages (~5 ms for 4,096 of ~3 KB).
FTS_BATCH = 4096
# How often the expunge history is pruned (limits.expunge_history_days).
PRUNE_EVERY = 6 * 3600


def _ingest_processes() -> int:
    """Parse new messages (APPEND, LMTP) in worker processes when there is
    a core to spare (store/sqlite/ingest_procs.py); MAILBAG_INGEST_PROCESSES
    overrides (0: ingest threads in this process, as the CLI tools use)."""
    env = os.environ.get("MAILBAG_INGEST_PROCESSES")
    if env is not None and env.strip().isdigit():
        return int(env)
    cores = os.cpu_count() or 1
    return min(2, cores - 1)


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = SqliteStore(config.data_dir, ingest_processes=_ingest_processes(),
                                 fts_batch=FTS_BATCH)
        self.hasher = PasswordHasher(config.argon2)
        # The hash unknown names are checked against exists before the first
        # login, so that login costs what a real account's does.
        self.hasher.warm()
        self.per_ip: Counter[str] = Counter()
        self.servers: list[tuple[str, asyncio.Server]] = []
        self.ctx: ServerContext | None = None
        self.pop3: Pop3Context | None = None
        self.lmtp: LmtpListeners | None = None
        self.stopped = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.housekeeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.open()
        cert, key, fingerprint = ensure_certificate(
            self.config.data_dir, self.config.tls.cert_file, self.config.tls.key_file
        )
        self.cert_files = (cert, key)
        tls = server_context(cert, key)
        authenticator = Authenticator(self.store, self.hasher, config=self.config)
        self.ctx = ServerContext(self.config, self.store, authenticator, tls)
        # IMAP runs on imap/transport.py's Connection (its own TLS and
        # COMPRESS layers) rather than asyncio streams: an idle connection
        # must cost kilobytes, not asyncio TLS's 256 KiB buffer.
        loop = asyncio.get_running_loop()
        if self.config.imap.enabled:
            srv = await loop.create_server(
                self._imap_factory(False), self.config.imap.host, self.config.imap.port,
            )
            self.servers.append(("imap", srv))
        if self.config.imaps.enabled:
            srv = await loop.create_server(
                self._imap_factory(True), self.config.imaps.host, self.config.imaps.port,
            )
            self.servers.append(("imaps", srv))
        # POP3 shares the TLS context, the Authenticator (and so its rate
        # limiter) and the connection caps with IMAP.
        self.pop3 = Pop3Context(self.config, self.store, authenticator, tls)
        if self.config.pop3.enabled:
            srv = await asyncio.start_server(
                self._pop3_handler(False), self.config.pop3.host, self.config.pop3.port,
            )
            self.servers.append(("pop3", srv))
        if self.config.pop3s.enabled:
            srv = await asyncio.start_server(
                self._pop3_handler(True), self.config.pop3s.host, self.config.pop3s.port,
                ssl=tls, ssl_handshake_timeout=30,
            )
            self.servers.append(("pop3s", srv))
        # LMTP delivery (RFC 2033) from the MTA; logs its own listeners.
        self.lmtp = await start_lmtp(self.config, self.store)
        for label, srv in self.servers:
            for sock in srv.sockets:
                log_event(log, "listening", proto=label, addr=sock.getsockname()[0],
                          port=sock.getsockname()[1])
        log_event(log, "tls-certificate", path=str(cert), sha256=fingerprint)
        if self.config.limits.expunge_history_days > 0:
            self.housekeeping = loop.create_task(self._prune_expunged())

    async def _prune_expunged(self) -> None:
        """Forget expunges older than limits.expunge_history_days (the QRESYNC
        history, RFC 7162), at start and then every PRUNE_EVERY seconds, so
        that a mailbox with years of churn does not keep a row for every
        message it ever lost."""
        keep = self.config.limits.expunge_history_days * 86400
        while True:
            try:
                n = await self.store.prune_expunged(int(time.time() - keep))
                if n:
                    log_event(log, "expunge-history-pruned", rows=n)
            except Exception:  # noqa: BLE001 - retried next time
                log.exception("pruning the expunge history failed")
            await asyncio.sleep(PRUNE_EVERY)

    def reload_tls(self) -> None:
        assert self.ctx is not None
        try:
            cert, key, fingerprint = ensure_certificate(
                self.config.data_dir, self.config.tls.cert_file, self.config.tls.key_file
            )
            # Tried on a fresh context first: a pair that does not load (a
            # certificate renewed before its key) must not reach the live
            # one, where a half-done load would break every handshake.
            server_context(cert, key)
            # Loading into the context in use means both listeners and every
            # later STARTTLS handshake present the new certificate.
            assert self.ctx.tls_context is not None
            self.ctx.tls_context.load_cert_chain(cert, key)
        except (TlsError, OSError, ssl.SSLError, ValueError) as exc:
            log_event(log, "tls-reload-failed", error=str(exc))
            return
        log_event(log, "tls-reloaded", sha256=fingerprint)

    def _imap_factory(self, implicit_tls: bool) -> Callable[[], Connection]:
        """Protocol factory for an IMAP listener: the session starts once the
        connection is ready (after the handshake for implicit TLS)."""
        handle = self._handler(implicit_tls)
        assert self.ctx is not None
        tls = self.ctx.tls_context if implicit_tls else None

        def ready(conn: Connection) -> None:
            task = asyncio.get_running_loop().create_task(handle(conn, conn))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        return lambda: Connection(ready, tls, handshake_timeout=30)

    def _handler(self, implicit_tls: bool) -> Callable[
            [Connection, Connection], Coroutine[Any, Any, None]]:
        async def handle(reader: Connection, writer: Connection) -> None:
            assert self.ctx is not None
            peer = writer.get_extra_info("peername")
            ip = peer[0] if isinstance(peer, tuple) else "local"
            limits = self.config.limits
            # The text says which cap it was: one address hogging its share
            # is a different problem from a full server.
            if self.per_ip[ip] >= limits.max_connections_per_ip:
                reason, text = "too-many-connections-per-ip", b"from your address"
            elif self._connections() >= limits.max_connections:
                reason, text = "too-many-connections", b"to this server"
            else:
                reason = None
            if reason is not None:
                log_event(log, "connection-refused", rip=ip, reason=reason)
                with contextlib.suppress(Exception):
                    writer.write(b"* BYE [UNAVAILABLE] Too many connections " + text + b"\r\n")
                    await writer.drain()
                    writer.close()
                return
            await self._run_counted(ip, Session(self.ctx, reader, writer, implicit_tls),
                                    _preauth_expired)

        return handle

    async def _run_counted(self, ip: str, session: Session | Pop3Session,
                           expired: Callable[[Any, str], None]) -> None:
        """Run an admitted session, counted against its address. The
        preauth_timeout is a deadline from the connection's start, not only a
        per-read timeout: a client trickling a byte at a time would otherwise
        never time out (slow loris)."""
        self.per_ip[ip] += 1
        deadline = asyncio.get_running_loop().call_later(
            self.config.limits.preauth_timeout, expired, session, ip
        )
        try:
            await session.run()
        finally:
            deadline.cancel()
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]

    def _connections(self) -> int:
        """Open IMAP and POP3 sessions: max_connections caps them together."""
        imap = len(self.ctx.sessions) if self.ctx is not None else 0
        return imap + (len(self.pop3.sessions) if self.pop3 is not None else 0)

    def _pop3_handler(self, implicit_tls: bool) -> Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert self.pop3 is not None
            peer = writer.get_extra_info("peername")
            ip = peer[0] if isinstance(peer, tuple) else "local"
            limits = self.config.limits
            if (self._connections() >= limits.max_connections
                    or self.per_ip[ip] >= limits.max_connections_per_ip):
                log_event(log, "connection-refused", rip=ip, reason="too-many-connections",
                          proto="pop3")
                with contextlib.suppress(Exception):
                    writer.write(b"-ERR [SYS/TEMP] Too many connections\r\n")
                    await writer.drain()
                    writer.close()
                return
            await self._run_counted(ip, Pop3Session(self.pop3, reader, writer, implicit_tls),
                                    _pop3_preauth_expired)

        return handle

    async def shutdown(self) -> None:
        assert self.ctx is not None
        log_event(log, "shutdown", sessions=len(self.ctx.sessions))
        self.ctx.shutting_down = True
        for _, srv in self.servers:
            srv.close()
        for session in list(self.ctx.sessions):
            session.wake.set()       # an IDLE ends with BYE (commands/idle.py)
        told: set[Session] = set()
        if self.pop3 is not None:
            await shutdown_sessions(self.pop3)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while (self.ctx.sessions or (self.pop3 and self.pop3.sessions)) \
                and loop.time() < deadline:
            # Between commands: say goodbye now. A command in progress ends
            # first (Session.loop says BYE after it; pipelined APPENDs leave
            # the session reading, and it is told on a later round).
            for session in list(self.ctx.sessions):
                if session not in told and _awaiting_command(session):
                    told.add(session)
                    with contextlib.suppress(Exception):
                        session.writer.write(b"* BYE Server shutting down\r\n")
                        session.writer.close()
            await asyncio.sleep(0.05)
        for session in list(self.ctx.sessions):
            # Still there after the grace period (a client that stopped in
            # the middle of a literal): it is told, then cut off.
            log_event(log, "shutdown-forced", rip=session.remote_ip)
            with contextlib.suppress(Exception):
                session.writer.write(b"* BYE Server shutting down\r\n")
                session.writer.close()
        for _, srv in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1)
        if self.housekeeping is not None:
            self.housekeeping.cancel()
        if self.lmtp is not None:
            await self.lmtp.close()      # lets a DATA in progress finish
        await self.ctx.indexes.close()   # writes \Recent claims back
        self.ctx.fanout.close()
        await self.store.close()
        self.hasher.close()


async def serve(config: Config, ready: Callable[[Server], None] | None = None) -> None:
    server = Server(config)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, server.reload_tls)
    if ready is not None:
        ready(server)
    print("mailbag ready: " + ", ".join(
        f"{label} {sock.getsockname()[0]}:{sock.getsockname()[1]}"
        for label, srv in server.servers for sock in srv.sockets[:1]), flush=True)
    await stop.wait()
    await server.shutdown()


def run(config: Config) -> int:
    configure_logging(config.log_level)
    try:
        try:
            # MAILBAG_EVENT_LOOP=asyncio: the standard loop even when uvloop
            # is installed (bench/idle.py measures both).
            if os.environ.get("MAILBAG_EVENT_LOOP") == "asyncio":
                raise ImportError
            import uvloop
        except ImportError:
            asyncio.run(serve(config))
        else:
            uvloop.run(serve(config))
    except OSError as exc:
        print(f"mailbag: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
