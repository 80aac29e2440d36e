"""QUOTA (RFC 9208) end to end: GETQUOTA, GETQUOTAROOT, SETQUOTA refused,
STORAGE in KiB, STATUS DELETED-STORAGE, [OVERQUOTA] on APPEND and COPY, and
the ``mailbag quota`` admin command that sets the limits, against the real
server over a raw socket."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from raw_imap_client import RawClient

from mailbag.cli.common import CliError
from mailbag.cli.quota import parse_size

if TYPE_CHECKING:
    from testserver import TestServer

_users = itertools.count(1)


class Client(RawClient):
    """One command at a time; untagged lines kept."""

    inline_literals = False

    def run(self, command: str | bytes) -> tuple[list[bytes], bytes]:
        tag, raw = self.send(command, b"q")
        untagged: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def ok(self, command: str | bytes) -> list[bytes]:
        untagged, tagged = self.run(command)
        assert tagged.startswith(b"OK"), (command, tagged, untagged)
        return untagged

    def append(self, mailbox: str, body: bytes) -> bytes:
        """The tagged reply to APPEND with a LITERAL+ literal."""
        return self.run(f"APPEND {mailbox} {{{len(body)}+}}\r\n".encode() + body)[1]

    def close(self) -> None:
        try:
            self.run("LOGOUT")
        finally:
            self.sock.close()


def body(size: int) -> bytes:
    """A message of exactly ``size`` octets."""
    head = b"From: a@example.org\r\nSubject: filler\r\n\r\n"
    return head + b"x" * (size - len(head) - 2) + b"\r\n"


@pytest.fixture
def user(server: TestServer) -> Iterator[tuple[str, Client]]:
    """A fresh account (so quotas of one test do not leak into the next),
    logged in."""
    name = f"quota{next(_users)}"
    server.add_user(name, "pw")
    c = Client(server.imap_port)
    c.ok(f"LOGIN {name} pw")
    try:
        yield name, c
    finally:
        c.close()


def set_quota(server: TestServer, name: str, size: str) -> str:
    r = server.cli("quota", "set", name, size)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_capabilities(user: tuple[str, Client]) -> None:
    _, c = user
    caps = c.ok("CAPABILITY")[0].split()
    assert b"QUOTA" in caps and b"QUOTA=RES-STORAGE" in caps
    # SETQUOTA is refused, so QUOTASET must not be claimed (RFC 9208 §3.2).
    assert b"QUOTASET" not in caps
    assert not any(cap.startswith(b"QUOTA=RES-MESSAGE") for cap in caps)


def test_no_limit_means_no_quota_root(user: tuple[str, Client]) -> None:
    _, c = user
    assert c.ok("GETQUOTAROOT INBOX") == [b"* QUOTAROOT INBOX"]
    untagged, tagged = c.run('GETQUOTA ""')
    assert tagged.startswith(b"NO") and untagged == []


def test_getquota_reports_usage_and_limit_in_kib(server: TestServer,
                                                 user: tuple[str, Client]) -> None:
    name, c = user
    out = set_quota(server, name, "10K")
    assert "10240 bytes" in out
    assert c.append("INBOX", body(1500)).startswith(b"OK")
    assert c.append("Sent", body(700)).startswith(b"OK")
    # 2200 octets: 3 KiB rounded up; the limit is exactly 10 KiB.
    assert c.ok("GETQUOTAROOT Sent") == [b'* QUOTAROOT Sent ""', b'* QUOTA "" (STORAGE 3 10)']
    assert c.ok('GETQUOTA ""') == [b'* QUOTA "" (STORAGE 3 10)']
    # Another root name does not exist.
    untagged, tagged = c.run('GETQUOTA "User quota"')
    assert tagged.startswith(b"NO") and not untagged
    # A missing mailbox has no quota root.
    assert c.run("GETQUOTAROOT Nowhere")[1].startswith(b"NO [NONEXISTENT]")

    show = server.cli("quota", "show", name)
    assert show.returncode == 0
    assert f"{name}: 2200 of 10240 bytes used" in show.stdout


def test_append_over_quota_is_refused(server: TestServer, user: tuple[str, Client]) -> None:
    name, c = user
    set_quota(server, name, "4096")
    assert c.append("INBOX", body(3000)).startswith(b"OK")
    tagged = c.append("INBOX", body(1200))
    assert tagged.startswith(b"NO [OVERQUOTA]"), tagged
    assert c.ok("STATUS INBOX (MESSAGES SIZE)") == [b"* STATUS INBOX (MESSAGES 1 SIZE 3000)"]
    # Exactly up to the limit still fits.
    assert c.append("INBOX", body(1096)).startswith(b"OK")
    # MULTIAPPEND is all or nothing.
    set_quota(server, name, "none")
    set_quota(server, name, "8192")
    small, big = body(100), body(5000)
    cmd = (f"APPEND INBOX {{{len(small)}+}}\r\n".encode() + small
           + f" {{{len(big)}+}}\r\n".encode() + big)
    assert c.run(cmd)[1].startswith(b"NO [OVERQUOTA]")
    assert c.ok("STATUS INBOX (MESSAGES)") == [b"* STATUS INBOX (MESSAGES 2)"]


def test_copy_over_quota_is_refused_but_move_is_not(server: TestServer,
                                                   user: tuple[str, Client]) -> None:
    name, c = user
    assert c.append("INBOX", body(3000)).startswith(b"OK")
    set_quota(server, name, "5000")
    c.ok("SELECT INBOX")
    _, tagged = c.run("UID COPY 1 Archive")
    assert tagged.startswith(b"NO [OVERQUOTA]"), tagged
    assert c.ok("STATUS Archive (MESSAGES)") == [b"* STATUS Archive (MESSAGES 0)"]
    # A MOVE inside the account frees what it adds.
    assert any(b"EXPUNGE" in line for line in c.ok("UID MOVE 1 Archive"))
    assert c.ok("STATUS Archive (MESSAGES)") == [b"* STATUS Archive (MESSAGES 1)"]


def test_setquota_is_refused(user: tuple[str, Client]) -> None:
    _, c = user
    assert c.run('SETQUOTA "" (STORAGE 512)')[1].startswith(b"NO [NOPERM]")
    assert c.run('SETQUOTA "" ()')[1].startswith(b"NO [NOPERM]")
    # Bad syntax is BAD, not NO.
    assert c.run('SETQUOTA "" (STORAGE)')[1].startswith(b"BAD")
    assert c.run('SETQUOTA "" STORAGE 5')[1].startswith(b"BAD")
    assert c.run("GETQUOTA")[1].startswith(b"BAD")
    assert c.ok("GETQUOTAROOT INBOX") == [b"* QUOTAROOT INBOX"]


def test_limit_removed_with_none(server: TestServer, user: tuple[str, Client]) -> None:
    name, c = user
    set_quota(server, name, "1K")
    assert c.append("INBOX", body(2000)).startswith(b"NO [OVERQUOTA]")
    assert "none" in set_quota(server, name, "none")
    assert c.append("INBOX", body(2000)).startswith(b"OK")
    assert c.ok("GETQUOTAROOT INBOX") == [b"* QUOTAROOT INBOX"]
    assert "no limit" in server.cli("quota", "show", name).stdout


def test_status_deleted_storage(user: tuple[str, Client]) -> None:
    _, c = user
    for size in (1000, 2500, 400):
        assert c.append("INBOX", body(size)).startswith(b"OK")
    assert c.ok("STATUS INBOX (DELETED DELETED-STORAGE)") == [
        b"* STATUS INBOX (DELETED 0 DELETED-STORAGE 0)"]
    c.ok("SELECT INBOX")
    c.ok("UID STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    # 2900 octets marked \Deleted: 3 KiB rounded up.
    assert c.ok("STATUS INBOX (DELETED DELETED-STORAGE)") == [
        b"* STATUS INBOX (DELETED 2 DELETED-STORAGE 3)"]


def test_cli_errors(server: TestServer) -> None:
    r = server.cli("quota", "set", "nobody-here", "1G")
    assert r.returncode == 1 and "no such user nobody-here" in r.stderr
    r = server.cli("quota", "set", "alice", "lots")
    assert r.returncode == 1 and "'lots': not a size" in r.stderr
    r = server.cli("quota", "show", "nobody-here")
    assert r.returncode == 1 and "no such user" in r.stderr


@pytest.mark.parametrize("text, size", [
    ("1048576", 1048576), ("500M", 500 * 1024**2), ("2G", 2 * 1024**3),
    ("1.5GiB", 3 * 1024**3 // 2), ("10k", 10240), ("none", None), ("unlimited", None),
])
def test_parse_size(text: str, size: int | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-5", "5X", "M", "1e9", str(2**63)])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(CliError):
        parse_size(text)


def test_quota_grammar() -> None:
    from mailbag.wire.grammar import parse_command
    from mailbag.wire.quota_grammar import GetQuota, GetQuotaRoot, SetQuota

    def parse(line: bytes) -> object:
        return parse_command([line], [], 8)

    assert parse(b'a GETQUOTA ""') == GetQuota("a", "")
    assert parse(b"a GETQUOTAROOT inbox") == GetQuotaRoot("a", "inbox")
    assert parse(b'a SETQUOTA "" (storage 512 MESSAGE 10)') == SetQuota(
        "a", "", (("STORAGE", 512), ("MESSAGE", 10)))
    assert parse(b"a SETQUOTA x ()") == SetQuota("a", "x", ())
