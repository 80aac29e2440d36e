"""Helpers for the POP3 tests: accounts, raw IMAP APPEND (byte-exact, unlike
imaplib, which rewrites bare LF to CRLF), poplib sessions."""

from __future__ import annotations

import imaplib
import itertools
import os
import poplib
import socket

_names = itertools.count(1)


def new_account(server, prefix: str = "pop") -> tuple[str, str]:
    """A fresh account on ``server`` (so tests do not share an INBOX)."""
    name = f"{prefix}{os.getpid()}x{next(_names)}"
    password = f"{name}-pw"
    server.add_user(name, password)
    return name, password


def message(n: int, body: str = "Body text.\r\n", subject: str | None = None) -> bytes:
    subject = subject or f"POP3 test {n}"
    return (
        f"From: Sender <sender@example.org>\r\n"
        f"To: rcpt@example.org\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Wed, 04 Mar 2026 08:00:{n % 60:02d} +0000\r\n"
        f"Message-ID: <pop{n}.{os.getpid()}@example.org>\r\n"
        f"\r\n{body}"
    ).encode()


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed while waiting for {marker!r}: {buf!r}")
        buf += chunk
    return buf


def _tagged(sock: socket.socket, tag: bytes) -> bytes:
    """Read until the tagged completion line for ``tag``; return that line."""
    buf = b""
    while True:
        for line in buf.split(b"\r\n")[:-1]:
            if line.startswith(tag + b" "):
                return line
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed while waiting for {tag!r}: {buf!r}")
        buf += chunk


def append_raw(server, user: str, password: str, data: bytes, mailbox: str = "INBOX") -> None:
    """APPEND ``data`` exactly as given (bare LF survives) over plain IMAP."""
    with socket.create_connection(("127.0.0.1", server.imap_port), timeout=10) as s:
        _read_until(s, b"\r\n")
        s.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        assert _tagged(s, b"a").startswith(b"a OK")
        s.sendall(b"b APPEND %s {%d}\r\n" % (mailbox.encode(), len(data)))
        _read_until(s, b"+")
        s.sendall(data + b"\r\n")
        reply = _tagged(s, b"b")
        assert reply.startswith(b"b OK"), reply
        s.sendall(b"c LOGOUT\r\n")


def imap(server, user: str, password: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    c.login(user, password)
    return c


def pop(server, user: str | None = None, password: str | None = None) -> poplib.POP3:
    """A poplib session on the plain listener, logged in with USER/PASS when
    a user is given."""
    p = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
    if user is not None:
        p.user(user)
        p.pass_(password)
    return p


def retr_bytes(p: poplib.POP3, n: int) -> bytes:
    """RETR n as the client holds it: un-stuffed lines joined with CRLF."""
    _, lines, _ = p.retr(n)
    return b"".join(line + b"\r\n" for line in lines)
