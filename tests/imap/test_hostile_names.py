"""Hostile input against the real server (issue 4, "Hostile input").

Accounts are isolated: alice throws every kind of odd mailbox name at every
command that takes one (``..``, ``/``, wildcards, modified UTF-7 and UTF-8
tricks, overlong names, control characters, ``INBOX/../x``, bob's own folder
names, paths naming bob) and never sees a byte of bob's mail, never changes
bob's mailboxes, and always gets a tagged answer on a live connection.

Memory per connection stays bounded: literals beyond ``max_literal`` (1 GB
announced, 70 MB actually streamed) and endless lines get [TOOBIG] while the
server's resident memory does not grow with what was sent.
"""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import pytest
import testserver

BOB_MARK = f"BOB-SECRET-{uuid.uuid4().hex}".encode()
ALICE_MARK = f"ALICE-{uuid.uuid4().hex}".encode()
TAGGED = re.compile(rb"^(t\d+) (OK|NO|BAD)\b")


class Raw:
    """A byte-exact IMAP client: names go out as literals, unchanged."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.n = 0
        assert self.file.readline().startswith(b"* OK")

    def command(self, *parts: bytes) -> tuple[bytes, list[bytes]]:
        """Send ``parts`` joined by spaces; a part in a list goes as a
        synchronizing literal. Returns (status, every line received)."""
        self.n += 1
        tag = f"t{self.n}".encode()
        lines: list[bytes] = []
        pending = tag
        for part in parts:
            if isinstance(part, list):
                data = part[0]
                self.sock.sendall(pending + b" {" + str(len(data)).encode() + b"}\r\n")
                pending = b""
                while True:
                    line = self.file.readline()
                    if not line:
                        raise ConnectionError("closed while waiting for '+'")
                    lines.append(line)
                    if line.startswith(b"+"):
                        break
                    if line.startswith(tag + b" "):
                        return line.split()[1], lines      # literal refused
                pending = data
            else:
                pending += b" " + part
        self.sock.sendall(pending + b"\r\n")
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError(f"connection closed; got {lines!r}")
            lines.append(line)
            m = TAGGED.match(line)
            if m and m.group(1) == tag:
                return m.group(2), lines

    def close(self) -> None:
        try:
            self.command(b"LOGOUT")
        finally:
            self.sock.close()


def lit(name: bytes) -> list[bytes]:
    return [name]


def message(mark: bytes) -> bytes:
    return b"From: x@example.org\r\nSubject: " + mark + b"\r\n\r\nbody " + mark + b"\r\n"


def login(port: int, user: str, password: str) -> Raw:
    c = Raw(port)
    status, lines = c.command(b"LOGIN", user.encode(), password.encode())
    assert status == b"OK", lines
    return c


def snapshot(c: Raw) -> dict[bytes, list[bytes]]:
    """Every mailbox of the logged-in account with every message's bytes."""
    status, lines = c.command(b"LIST", b'""', b'"*"')
    assert status == b"OK"
    out: dict[bytes, list[bytes]] = {}
    for line in lines:
        m = re.match(rb'\* LIST \(([^)]*)\) (?:"."|NIL) (.+)\r\n', line)
        if not m or b"\\Noselect" in m.group(1) or b"\\NonExistent" in m.group(1):
            continue
        name = m.group(2)
        status, _ = c.command(b"EXAMINE", name)
        assert status == b"OK", name
        status, fetched = c.command(b"FETCH", b"1:*", b"(BODY.PEEK[])")
        out[name] = sorted(x for x in fetched if not TAGGED.match(x))
    return out


HOSTILE: list[bytes] = [
    b"..", b"../bob", b"../../bob/INBOX", b"INBOX/../x", b"INBOX/..", b"INBOX/./x",
    b"/", b"//", b"/bob", b"/INBOX", b"INBOX/", b"bob", b"bob/INBOX", b"~bob",
    b"~bob/INBOX", b"#shared/bob", b"#user/bob/INBOX", b"user/bob", b"user.bob.INBOX",
    b"Other Users/bob/INBOX", b"%", b"*", b"INBOX%", b"INBOX*", b"%/%", b"_", b"Priv_te",
    b"Priv%", b"\\", b"\\Private", b"Private", b"Private/Deeper", b"Private/..",
    # Modified UTF-7 (RFC 3501 §5.1.3): "..", "/", "bob", "INBOX", bad base64, bare "&".
    b"&AC4ALg-", b"&AC8-", b"&AC8-bob", b"&AGIAbwBi-", b"&AEkATgBCAE8AWA-", b"&ZZZ", b"&",
    b"&-&-", b"&AAA-", b"&2D3eAA-",
    # UTF-8 tricks: fullwidth INBOX, dotless/dotted i, zero-width, overlong "..",
    # lone surrogate, bidi override, raw 0xff.
    "ＩＮＢＯＸ".encode(), "İNBOX".encode(), "INBOX\u200b".encode(), "Pri\u200bvate".encode(),
    b"\xc0\xae\xc0\xae", b"\xc0\xaf", b"\xed\xa0\x80", "\u202eetavirP".encode(), b"\xff\xfe",
    # Control characters and NUL (only expressible in literals).
    b"a\x00b", b"\x00", b"a\rb", b"a\nb", b"\x1b[31mred", b"tab\there", b"del\x7f",
    # Overlong and deep.
    b"x" * 600, b"y" * 70_000, b"/".join([b"d"] * 100),
]


@pytest.fixture(scope="module")
def bob_before(server: testserver.TestServer) -> dict[bytes, list[bytes]]:
    bob = login(server.imap_port, "bob", "bob-pw")
    for box in (b"Private", b"Private/Deeper", b"x", b"Priv_te"):
        status, _ = bob.command(b"CREATE", box)
        assert status == b"OK"
    for box in (b"INBOX", b"Private", b"Private/Deeper", b"x"):
        status, _ = bob.command(b"APPEND", box, lit(message(BOB_MARK)))
        assert status == b"OK"
    snap = snapshot(bob)
    bob.close()
    assert sum(len(v) for v in snap.values()) > 0
    return snap


def attack(c: Raw, name: bytes) -> list[bytes]:
    """Every command that takes a mailbox name, with ``name``; all lines received."""
    seen: list[bytes] = []

    def run(*parts: bytes) -> bytes:
        status, lines = c.command(*parts)
        seen.extend(lines)
        return status

    n = lit(name)
    run(b"CREATE", n)
    run(b"STATUS", n, b"(MESSAGES UIDNEXT UNSEEN)")
    run(b"APPEND", n, lit(message(ALICE_MARK)))
    run(b"LIST", b'""', n)
    run(b"LIST", n, b'"*"')
    run(b"LIST", b'""', n, b"RETURN", b"(STATUS (MESSAGES))")
    run(b"LSUB", b'""', n)
    run(b"SUBSCRIBE", n)
    run(b"UNSUBSCRIBE", n)
    if run(b"SELECT", n) == b"OK":
        run(b"FETCH", b"1:*", b"(BODY.PEEK[] ENVELOPE)")
        run(b"SEARCH", b"ALL")
        run(b"UNSELECT")
    if run(b"EXAMINE", n) == b"OK":
        run(b"FETCH", b"1:*", b"(BODY.PEEK[])")
        run(b"CLOSE")
    assert run(b"SELECT", b"INBOX") == b"OK"
    run(b"COPY", b"1:*", n)
    run(b"UNSELECT")
    run(b"RENAME", n, b"alice-renamed")
    run(b"RENAME", b"alice-renamed", n)
    run(b"DELETE", b"alice-renamed")
    run(b"DELETE", n)
    status = run(b"NOOP")
    assert status == b"OK", "the connection must survive"
    return seen


@pytest.mark.parametrize("utf8", [False, True], ids=["mutf7", "utf8-accept"])
def test_no_mailbox_name_reaches_another_account(
    server: testserver.TestServer, bob_before: dict[bytes, list[bytes]], utf8: bool
) -> None:
    alice = login(server.imap_port, "alice", "alice-pw")
    if utf8:
        assert alice.command(b"ENABLE", b"UTF8=ACCEPT")[0] == b"OK"
    status, _ = alice.command(b"APPEND", b"INBOX", lit(message(ALICE_MARK)))
    assert status == b"OK"
    for name in HOSTILE:
        seen = b"".join(attack(alice, name))
        assert BOB_MARK not in seen, name
        assert b"Private/Deeper" not in seen or name.startswith(b"Private"), name
    # Whatever alice made of it, her own view holds none of bob's mail.
    assert BOB_MARK not in b"".join(b"".join(v) for v in snapshot(alice).values())
    alice.close()
    # And bob's mailboxes are exactly as they were.
    bob = login(server.imap_port, "bob", "bob-pw")
    after = snapshot(bob)
    bob.close()
    assert after == bob_before


# ------------------------------------------------------------------ memory


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stream(sock: socket.socket, total: int, pid: int) -> tuple[int, int]:
    """Send ``total`` bytes (or until the server closes); (bytes sent, peak
    server RSS in KiB seen meanwhile)."""
    chunk = b"x" * (1 << 20)
    sent, peak = 0, rss_kib(pid)
    try:
        while sent < total:
            sock.sendall(chunk[: min(len(chunk), total - sent)])
            sent += min(len(chunk), total - sent)
            if sent % (8 << 20) == 0:
                peak = max(peak, rss_kib(pid))
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent, max(peak, rss_kib(pid))


def test_oversized_literals_and_lines_do_not_grow_memory(
    server: testserver.TestServer,
) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    c = login(server.imap_port, "alice", "alice-pw")
    c.command(b"NOOP")
    base = rss_kib(pid)

    # A synchronizing 1 GB literal: refused before a byte of it is sent.
    c.sock.sendall(b"s1 APPEND INBOX {1073741824}\r\n")
    reply = c.file.readline()
    assert reply.startswith(b"s1 NO [TOOBIG]"), reply
    assert c.command(b"NOOP")[0] == b"OK"

    # 70 MB non-synchronizing literal (LITERAL+) beyond max_literal (64 MiB):
    # skipped as it streams, then NO [TOOBIG]; the connection lives on.
    size = 70 * 1024 * 1024
    c.sock.sendall(b"s2 APPEND INBOX {%d+}\r\n" % size)
    sent, peak = stream(c.sock, size, pid)
    assert sent == size
    c.sock.sendall(b"\r\n")
    reply = c.file.readline()
    assert reply.startswith(b"s2 NO [TOOBIG]"), reply
    assert c.command(b"NOOP")[0] == b"OK"
    assert peak - base < 32 * 1024, f"server RSS grew by {peak - base} KiB"

    # A 40 MB line that never ends: discarded with BAD [TOOBIG], no growth.
    sent, peak = stream(c.sock, 40 * 1024 * 1024, pid)
    c.sock.sendall(b"\r\n")
    assert b"[TOOBIG]" in c.file.readline()
    assert c.command(b"NOOP")[0] == b"OK"
    assert peak - base < 32 * 1024, f"server RSS grew by {peak - base} KiB"
    c.close()

    # A 1 GB non-synchronizing literal: beyond any command size, so the server
    # says BYE [TOOBIG] and closes instead of reading a gigabyte.
    c = login(server.imap_port, "alice", "alice-pw")
    c.sock.sendall(b"s3 APPEND INBOX {1073741824+}\r\n")
    sent, peak = stream(c.sock, 1 << 30, pid)
    rest, reset = b"", False
    try:
        while line := c.file.readline():
            rest += line
    except ConnectionResetError:
        reset = True        # our unread data made the close a reset: BYE may be lost
    assert (b"[TOOBIG]" in rest and b"* BYE" in rest) or (reset and not rest), rest[:200]
    assert sent < 1 << 30, "the server read the whole gigabyte"
    assert peak - base < 32 * 1024, f"server RSS grew by {peak - base} KiB"
    c.sock.close()
