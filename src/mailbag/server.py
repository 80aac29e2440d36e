"""Listeners, TLS contexts and shutdown: IMAP on the STARTTLS port (RFC 9051
§6.2.1) and implicit TLS (RFC 8314 §3.3), connection caps, SIGTERM graceful
shutdown (finish the command in flight, say BYE, close) and SIGHUP
certificate reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections import Counter
from collections.abc import Awaitable, Callable

from mailbag.auth.authenticator import Authenticator
from mailbag.auth.passwords import PasswordHasher
from mailbag.config import Config
from mailbag.imap import commands as _commands  # noqa: F401 - registers handlers
from mailbag.imap.session import ServerContext, Session
from mailbag.log import configure_logging, log_event
from mailbag.store.sqlite import SqliteStore
from mailbag.tls import ensure_certificate, server_context

log = logging.getLogger("mailbag.server")

SHUTDOWN_GRACE = 10.0


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = SqliteStore(config.data_dir)
        self.hasher = PasswordHasher(config.argon2)
        self.per_ip: Counter[str] = Counter()
        self.servers: list[tuple[str, asyncio.Server]] = []
        self.ctx: ServerContext | None = None
        self.stopped = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.store.open()
        cert, key, fingerprint = ensure_certificate(
            self.config.data_dir, self.config.tls.cert_file, self.config.tls.key_file
        )
        self.cert_files = (cert, key)
        tls = server_context(cert, key)
        authenticator = Authenticator(self.store, self.hasher)
        self.ctx = ServerContext(self.config, self.store, authenticator, tls)
        if self.config.imap.enabled:
            srv = await asyncio.start_server(
                self._handler(False), self.config.imap.host, self.config.imap.port,
                limit=256 * 1024,
            )
            self.servers.append(("imap", srv))
        if self.config.imaps.enabled:
            srv = await asyncio.start_server(
                self._handler(True), self.config.imaps.host, self.config.imaps.port,
                ssl=tls, limit=256 * 1024, ssl_handshake_timeout=30,
            )
            self.servers.append(("imaps", srv))
        for label, srv in self.servers:
            for sock in srv.sockets:
                log_event(log, "listening", proto=label, addr=sock.getsockname()[0],
                          port=sock.getsockname()[1])
        log_event(log, "tls-certificate", path=str(cert), sha256=fingerprint)

    def reload_tls(self) -> None:
        assert self.ctx is not None
        try:
            cert, key, fingerprint = ensure_certificate(
                self.config.data_dir, self.config.tls.cert_file, self.config.tls.key_file
            )
            # Loading into the context in use means both listeners and every
            # later STARTTLS handshake present the new certificate.
            assert self.ctx.tls_context is not None
            self.ctx.tls_context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log_event(log, "tls-reload-failed", error=str(exc))
            return
        log_event(log, "tls-reloaded", sha256=fingerprint)

    def _handler(self, implicit_tls: bool) -> Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert self.ctx is not None
            peer = writer.get_extra_info("peername")
            ip = peer[0] if isinstance(peer, tuple) else "local"
            limits = self.config.limits
            if (len(self.ctx.sessions) >= limits.max_connections
                    or self.per_ip[ip] >= limits.max_connections_per_ip):
                log_event(log, "connection-refused", rip=ip, reason="too-many-connections")
                with contextlib.suppress(Exception):
                    writer.write(b"* BYE [UNAVAILABLE] Too many connections\r\n")
                    await writer.drain()
                    writer.close()
                return
            self.per_ip[ip] += 1
            try:
                await Session(self.ctx, reader, writer, implicit_tls).run()
            finally:
                self.per_ip[ip] -= 1
                if self.per_ip[ip] <= 0:
                    del self.per_ip[ip]

        return handle

    async def shutdown(self) -> None:
        assert self.ctx is not None
        log_event(log, "shutdown", sessions=len(self.ctx.sessions))
        self.ctx.shutting_down = True
        for _, srv in self.servers:
            srv.close()
        for session in list(self.ctx.sessions):
            if not session.busy:
                # Between commands: say goodbye now. A busy session says it
                # after its command completes (Session.loop).
                with contextlib.suppress(Exception):
                    session.writer.write(b"* BYE Server shutting down\r\n")
                    session.writer.close()
            session.wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while self.ctx.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for _, srv in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1)
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
            import uvloop
        except ImportError:
            asyncio.run(serve(config))
        else:
            uvloop.run(serve(config))
    except OSError as exc:
        print(f"mailbag: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
