"""LITERAL+ / LITERAL- (RFC 7888 §3, §5; RFC 9051 §4.3) against the real server.

With the default config the server advertises LITERAL+ and reads a
non-synchronizing literal of any size (up to max_literal). With
``[limits] nonsync_literal_max = 4096`` it advertises LITERAL- instead (never
both), reads {n+} literals of up to 4096 octets, and answers a larger one with
a tagged ``BAD [TOOBIG]`` after reading and discarding its octets: whatever the
literal held never runs as a command, and the connection carries on, before
and after login. The config key is validated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import testserver
from raw_imap_client import RawClient

from mailbag.config import ConfigError, load_config

# What a too-big literal holds: command lines that must never run.
INJECTED = b"z1 CREATE Injected\r\nz2 LOGOUT\r\n"


class Client(RawClient):
    """Raw lines, one command at a time."""

    # Refusals end in "{n}" (the literal to send instead): not a literal.
    inline_literals = False

    def run(self, command: bytes) -> tuple[list[bytes], bytes, bytes]:
        """Send ``tag command`` (non-synchronizing literals inline); the
        untagged lines, the tag and the tagged line after it."""
        tag, _ = self.send(command)
        untagged: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, tag, line[len(tag) + 1:]
            assert not re.match(rb"[a-z]\d+ ", line), f"reply to an injected command: {line!r}"
            untagged.append(line)

    def ok(self, command: bytes) -> list[bytes]:
        untagged, _, tagged = self.run(command)
        assert tagged.startswith(b"OK"), (command[:80], tagged)
        return untagged

    def sync_literal(self, head: bytes, data: bytes, tail: bytes = b"") -> bytes:
        """``head {n}``, wait for '+', then the data; the tagged reply."""
        tag = b"t%d" % next(self.tags)
        self.sock.sendall(tag + b" " + head + b" {%d}\r\n" % len(data))
        cont = self.line()
        assert cont.startswith(b"+"), cont
        self.sock.sendall(data + tail + b"\r\n")
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:]

    def capabilities(self) -> set[bytes]:
        untagged = self.ok(b"CAPABILITY")
        caps = [u for u in untagged if u.startswith(b"* CAPABILITY ")]
        assert len(caps) == 1, untagged
        return set(caps[0].split()[2:])

    def close(self) -> None:
        self.sock.close()


def message(size: int) -> bytes:
    head = b"From: a@example.org\r\nSubject: literal test\r\n\r\n"
    body = (INJECTED * (size // len(INJECTED) + 1))
    return (head + body)[:size]


@pytest.fixture(scope="module")
def minus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testserver.TestServer]:
    srv = testserver.TestServer(tmp_path_factory.mktemp("mailbag-literal-minus"),
                                extra_config="[limits]\nnonsync_literal_max = 4096\n")
    with testserver.serving(srv, {"alice": "alice-pw"}, no_traceback=True):
        yield srv


def mailboxes(c: Client) -> set[bytes]:
    return {line.rsplit(b" ", 1)[1].strip(b'"') for line in c.ok(b'LIST "" "*"')
            if line.startswith(b"* LIST")}


def message_count(c: Client, mailbox: bytes) -> int:
    untagged = c.ok(b"STATUS " + mailbox + b" (MESSAGES)")
    m = re.search(rb"MESSAGES (\d+)", b"".join(untagged))
    assert m, untagged
    return int(m.group(1))


# ---------------------------------------------------------------- LITERAL+

def test_default_advertises_literal_plus_only(server: testserver.TestServer) -> None:
    c = Client(server.imap_port)
    try:
        assert b"LITERAL+" in c.greeting and b"LITERAL-" not in c.greeting
        pre = c.capabilities()
        assert b"LITERAL+" in pre and b"LITERAL-" not in pre
        _, _, tagged = c.run(b"LOGIN alice alice-pw")
        assert b"LITERAL+" in tagged and b"LITERAL-" not in tagged
        post = c.capabilities()
        assert b"LITERAL+" in post and b"LITERAL-" not in post
    finally:
        c.close()


def test_default_reads_a_large_nonsync_literal(server: testserver.TestServer) -> None:
    c = Client(server.imap_port)
    try:
        c.ok(b"LOGIN alice alice-pw")
        c.ok(b"CREATE PlusBox")
        msg = message(5000)
        c.ok(b"APPEND PlusBox {5000+}\r\n" + msg)
        assert message_count(c, b"PlusBox") == 1
        c.ok(b"SELECT PlusBox")
        untagged = c.ok(b"FETCH 1 RFC822.SIZE")
        assert b"RFC822.SIZE 5000" in b"".join(untagged)
    finally:
        c.close()


# ---------------------------------------------------------------- LITERAL-

def test_literal_minus_is_advertised_instead(minus_server: testserver.TestServer) -> None:
    c = Client(minus_server.imap_port)
    try:
        assert b"LITERAL-" in c.greeting and b"LITERAL+" not in c.greeting
        pre = c.capabilities()
        assert b"LITERAL-" in pre and b"LITERAL+" not in pre
        _, _, tagged = c.run(b"LOGIN alice alice-pw")
        assert tagged.startswith(b"OK")
        assert b"LITERAL-" in tagged and b"LITERAL+" not in tagged
        post = c.capabilities()
        assert b"LITERAL-" in post and b"LITERAL+" not in post
        assert b"IMAP4rev2" in post
    finally:
        c.close()


def test_nonsync_up_to_4096_is_read(minus_server: testserver.TestServer) -> None:
    c = Client(minus_server.imap_port)
    try:
        # Before login as well: LOGIN with non-synchronizing literals.
        c.ok(b"LOGIN {5+}\r\nalice {8+}\r\nalice-pw")
        c.ok(b"CREATE Small")
        c.ok(b"APPEND Small {4096+}\r\n" + message(4096))
        assert message_count(c, b"Small") == 1
    finally:
        c.close()


def test_nonsync_over_4096_is_bad_toobig_and_skipped(minus_server: testserver.TestServer) -> None:
    c = Client(minus_server.imap_port)
    try:
        c.ok(b"LOGIN alice alice-pw")
        c.ok(b"CREATE Big")
        untagged, _, tagged = c.run(b"APPEND Big {4097+}\r\n" + message(4097))
        assert tagged.startswith(b"BAD [TOOBIG]"), tagged
        assert untagged == [], untagged
        # Nothing stored, nothing injected, and the connection works on.
        assert message_count(c, b"Big") == 0
        assert b"Injected" not in mailboxes(c)
        c.ok(b"NOOP")
        # The same message as a synchronizing literal is accepted.
        tagged = c.sync_literal(b"APPEND Big", message(4097))
        assert tagged.startswith(b"OK"), tagged
        assert message_count(c, b"Big") == 1
    finally:
        c.close()


def test_pipelined_commands_after_the_refused_literal_run(
        minus_server: testserver.TestServer) -> None:
    """The literal and the next command arrive in one write: the server must
    know exactly where the literal ends."""
    c = Client(minus_server.imap_port)
    try:
        c.ok(b"LOGIN alice alice-pw")
        c.ok(b"CREATE Pipe")
        c.sock.sendall(b"p1 APPEND Pipe {6000+}\r\n" + message(6000)
                       + b"\r\np2 APPEND Pipe {10+}\r\n0123456789\r\np3 NOOP\r\n")
        replies = {}
        while len(replies) < 3:
            line = c.line()
            m = re.match(rb"(p\d) (.*)", line)
            assert not re.match(rb"z\d ", line), line
            if m:
                replies[m.group(1)] = m.group(2)
        assert replies[b"p1"].startswith(b"BAD [TOOBIG]"), replies
        assert replies[b"p2"].startswith(b"OK"), replies
        assert replies[b"p3"].startswith(b"OK"), replies
        assert message_count(c, b"Pipe") == 1
    finally:
        c.close()


def test_preauth_over_4096_is_bad_toobig_then_login_works(
        minus_server: testserver.TestServer) -> None:
    c = Client(minus_server.imap_port)
    try:
        untagged, _, tagged = c.run(b"LOGIN {5000+}\r\n" + b"a" * 4990 + INJECTED[:10]
                                    + b" pw")
        assert tagged.startswith(b"BAD [TOOBIG]"), tagged
        # Still not authenticated; a proper LOGIN works.
        _, _, tagged = c.run(b"SELECT INBOX")
        assert tagged.startswith(b"BAD"), tagged
        c.ok(b"LOGIN alice alice-pw")
        c.ok(b"SELECT INBOX")
    finally:
        c.close()


def test_preauth_sync_literal_limit_still_applies(minus_server: testserver.TestServer) -> None:
    # preauth_max_literal (8 KiB): a bigger synchronizing literal is refused
    # before the client sends it (no '+').
    c = Client(minus_server.imap_port)
    try:
        _, _, tagged = c.run(b"LOGIN {9000}")
        assert tagged.startswith(b"NO [TOOBIG]"), tagged
        c.ok(b"LOGIN alice alice-pw")
    finally:
        c.close()


# ------------------------------------------------------------------ config

@pytest.mark.parametrize("value", [1, 1024, 4095, -1])
def test_config_refuses_limits_below_4096(tmp_path: Path, value: int) -> None:
    p = tmp_path / "mailbag.toml"
    p.write_text(f"[limits]\nnonsync_literal_max = {value}\n")
    with pytest.raises(ConfigError, match="nonsync_literal_max"):
        load_config(p)


@pytest.mark.parametrize("value", [0, 4096, 100000])
def test_config_accepts(tmp_path: Path, value: int) -> None:
    p = tmp_path / "mailbag.toml"
    p.write_text(f"[limits]\nnonsync_literal_max = {value}\n")
    assert load_config(p).limits.nonsync_literal_max == value
