"""The LMTP listeners: a Unix socket (the usual way an MTA on the same host
delivers, RFC 2033 §5 recommends against LMTP on TCP port 25) and/or a TCP
port, as configured in [lmtp] (docs/config.md). Started by server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

from mailbag.config import Config
from mailbag.lmtp.session import LmtpContext, LmtpSession, shutdown_sessions
from mailbag.log import log_event
from mailbag.store.api import Store

log = logging.getLogger("mailbag.lmtp")

# sockaddr_un.sun_path is 108 bytes on Linux, including the NUL.
MAX_SOCKET_PATH = 107


def socket_path(config: Config) -> Path:
    return config.lmtp.socket or (config.data_dir / "lmtp.sock")


@dataclass
class LmtpListeners:
    ctx: LmtpContext
    servers: list[tuple[str, asyncio.Server]] = field(default_factory=list)
    unix_path: Path | None = None

    async def close(self) -> None:
        for _, srv in self.servers:
            srv.close()
        await shutdown_sessions(self.ctx)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while self.ctx.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.ctx.sessions:
            await shutdown_sessions(self.ctx, force=True)
            await asyncio.sleep(0)
        for _, srv in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1)
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                self.unix_path.unlink()


async def _handle(ctx: LmtpContext, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    await LmtpSession(ctx, reader, writer).run()


def _stale_socket(path: Path) -> bool:
    """A socket file nobody listens on (left by a crash): safe to replace."""
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            return False
    except FileNotFoundError:
        return False
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
        except OSError:
            return True
    return False


async def start_lmtp(config: Config, store: Store) -> LmtpListeners:
    ctx = LmtpContext(config, store)
    out = LmtpListeners(ctx)
    m = config.lmtp

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(ctx, reader, writer)

    if m.unix:
        path = socket_path(config)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            if m.socket is not None:
                raise OSError(f"lmtp.socket: path longer than {MAX_SOCKET_PATH} bytes: {path}")
            # The default path under a deep data_dir: serve IMAP anyway.
            log_event(log, "lmtp-socket-skipped", path=str(path), reason="path-too-long")
        else:
            if path.exists() or path.is_symlink():
                if not _stale_socket(path):
                    raise OSError(f"lmtp socket {path} exists and is in use (or not a socket)")
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            srv = await asyncio.start_unix_server(handle, str(path), limit=256 * 1024)
            os.chmod(path, m.socket_mode)
            out.servers.append(("lmtp-unix", srv))
            out.unix_path = path
            log_event(log, "listening", proto="lmtp", socket=str(path))
    if m.tcp:
        srv = await asyncio.start_server(handle, m.host, m.port, limit=256 * 1024)
        out.servers.append(("lmtp", srv))
        for sock in srv.sockets:
            log_event(log, "listening", proto="lmtp", addr=sock.getsockname()[0],
                      port=sock.getsockname()[1])
    return out
