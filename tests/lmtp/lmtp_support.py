"""Helpers for the LMTP tests: a raw LMTP client that reads one reply per
recipient after DATA (smtplib.LMTP reads only one), IMAP look-ups of
delivered mail, and direct store access for set-up the CLI does not offer
(many accounts, quotas), on the real database."""

from __future__ import annotations

import asyncio
import imaplib
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from mailbag.store.sqlite import SqliteStore

T = TypeVar("T")
MAX_SIZE = 200_000


class RawLmtp:
    """Just enough of a client to see every reply, pipelining included."""

    def __init__(self, port: int | None = None, path: str | None = None) -> None:
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(30)
            self.sock.connect(path)
        else:
            assert port is not None
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffered {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: code and the text of all lines."""
        texts = []
        while True:
            line = self.line()
            texts.append(line[4:].decode())
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(texts)

    def cmd(self, line: str) -> tuple[int, str]:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def dot_stuff(message: bytes) -> bytes:
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def make_message(subject: str, body: str = "Hello.\r\n", extra: str = "") -> bytes:
    return (
        "From: Sender <sender@example.org>\r\n"
        "To: someone@example.org\r\n"
        f"Subject: {subject}\r\n"
        "Date: Wed, 04 Mar 2026 08:00:00 +0000\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n"
        f"{extra}\r\n{body}"
    ).encode()


def imap(server, user: str = "alice", password: str = "alice-pw") -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    conn.login(user, password)
    return conn


def find(server, subject: str, mailbox: str = "INBOX", user: str = "alice",
         password: str = "alice-pw") -> list[bytes]:
    """The raw messages in ``mailbox`` whose Subject contains ``subject``."""
    conn = imap(server, user, password)
    try:
        typ, _ = conn.select(f'"{mailbox}"')
        assert typ == "OK", mailbox
        typ, data = conn.uid("SEARCH", None, "SUBJECT", f'"{subject}"')
        assert typ == "OK"
        uids = data[0].split()
        out = []
        for uid in uids:
            typ, msg = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK"
            out.append(msg[0][1])
        return out
    finally:
        conn.logout()


def with_store(data_dir: Path, fn: Callable[[SqliteStore], Awaitable[T]]) -> T:
    """Run ``fn`` on the server's own database from this process (SQLite
    allows a second process; the writer waits for the server's lock)."""

    async def run() -> T:
        store = SqliteStore(data_dir, readers=1, ingest_workers=1)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def blob_files(data_dir: Path) -> set[str]:
    root = data_dir / "blobs"
    return {p.parent.name + p.name for p in root.glob("??/*") if not p.name.startswith(".")}


def message_rows(data_dir: Path) -> set[int]:
    """Ids of stored messages (content rows, one per distinct message)."""
    db = sqlite3.connect(data_dir / "mailbag.sqlite3")
    try:
        return {r[0] for r in db.execute("SELECT id FROM messages")}
    finally:
        db.close()
