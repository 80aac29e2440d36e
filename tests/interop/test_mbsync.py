"""Interop with mbsync (isync): two-way synchronisation of a local Maildir.

Proves that mbsync, a demanding real-world sync client (UIDPLUS, pipelining,
flag and expunge propagation, mailbox creation both ways), keeps a local
Maildir and the server in step:

* mail appended on the server (INBOX and a nested folder) arrives locally,
  with the right content and flags;
* flags set locally (Maildir info ``:2,FS``) and a new draft written into the
  local Drafts folder are pushed to the server (checked with imaplib);
* a message deleted on the server disappears locally (Expunge Both), and a
  message deleted locally is expunged on the server;
* a second round with changes on both sides at once converges, and a sync with
  nothing to do changes nothing.

Both config spellings are supported: ``TLSType`` (isync >= 1.5) and
``SSLType`` (isync 1.4).
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(MBSYNC is None, reason="mbsync binary not installed (apt-get install isync)")

MSG_A = (b"From: Erin <erin@example.org>\r\nTo: alice@example.org\r\n"
         b"Subject: sync me down\r\nDate: Thu, 05 Mar 2026 10:00:00 +0000\r\n"
         b"Message-ID: <a@example.org>\r\n\r\nHello from the server.\r\n")
MSG_B = (b"From: list@example.org\r\nTo: python@lists.example.org\r\n"
         b"Subject: list traffic\r\nDate: Thu, 05 Mar 2026 11:00:00 +0000\r\n"
         b"Message-ID: <b@example.org>\r\n\r\nNested folder message.\r\n")
MSG_C = (b"From: Frank <frank@example.org>\r\nTo: alice@example.org\r\n"
         b"Subject: second round\r\nDate: Fri, 06 Mar 2026 09:00:00 +0000\r\n"
         b"Message-ID: <c@example.org>\r\n\r\nArrived in round two.\r\n")
DRAFT = (b"From: alice@example.org\r\nTo: gina@example.org\r\n"
         b"Subject: draft written offline\r\nDate: Thu, 05 Mar 2026 12:00:00 +0000\r\n"
         b"Message-ID: <draft@example.org>\r\n\r\nDear Gina, unfinished.\r\n")
LOCAL_NEW = (b"From: alice@example.org\r\nTo: alice@example.org\r\n"
             b"Subject: filed locally\r\nDate: Fri, 06 Mar 2026 10:00:00 +0000\r\n"
             b"Message-ID: <local@example.org>\r\n\r\nWritten into the local INBOX.\r\n")


def mbsync_version() -> tuple[int, ...]:
    out = subprocess.run([MBSYNC, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    assert m, out
    return tuple(int(x or 0) for x in m.groups())


def normalise(raw: bytes) -> bytes:
    """Compare messages modulo line endings and mbsync's X-TUID tracking header."""
    text = raw.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    head = b"\n".join(h for h in head.split(b"\n") if not h.lower().startswith(b"x-tuid:"))
    return head + b"\n\n" + body


class Maildir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def files(self) -> list[Path]:
        return sorted(p for sub in ("cur", "new") if (self.path / sub).is_dir()
                      for p in (self.path / sub).iterdir() if p.is_file())

    def find(self, msg: bytes) -> Path | None:
        want = normalise(msg)
        hits = [p for p in self.files() if normalise(p.read_bytes()) == want]
        assert len(hits) <= 1, hits
        return hits[0] if hits else None

    @staticmethod
    def flags(p: Path) -> str:
        return p.name.split(":2,", 1)[1] if ":2," in p.name else ""

    @staticmethod
    def set_flags(p: Path, flags: str) -> Path:
        base = p.name.split(":2,", 1)[0]
        target = p.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
        p.rename(target)
        return target

    def deliver(self, name: str, msg: bytes, flags: str = "") -> Path:
        for sub in ("cur", "new", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        tmp = self.path / "tmp" / name
        tmp.write_bytes(msg.replace(b"\r\n", b"\n"))
        target = self.path / "cur" / f"{name}:2,{flags}"
        tmp.rename(target)
        return target


def write_rc(path: Path, root: Path, port: int, user: str, password: str,
             security: str, auth: str, extra: str = "") -> Path:
    keyword = "TLSType" if mbsync_version() >= (1, 5) else "SSLType"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"IMAPAccount mailbag\n"
        f"Host 127.0.0.1\nPort {port}\n"
        f"User {user}\nPass {password}\n"
        f"{keyword} {security}\n"
        f"AuthMechs {auth}\n{extra}\n"
        f"IMAPStore far\nAccount mailbag\n\n"
        f"MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n"
        f"Channel both\nFar :far:\nNear :near:\nPatterns *\nCreate Both\n"
        f"Expunge Both\nSyncState *\n"
    )
    return path


@pytest.fixture
def setup(server, tmp_path):
    root = tmp_path / "mail"
    # '*' excludes plaintext mechanisms on an unencrypted link; loopback is fine.
    rc = write_rc(tmp_path / "mbsyncrc", root, server.imap_port, "alice", "alice-pw",
                  "None", "PLAIN LOGIN")
    return rc, root


def sync(rc: Path) -> str:
    r = subprocess.run([MBSYNC, "-c", str(rc), "-a"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, HOME=str(rc.parent)))
    assert r.returncode == 0, f"mbsync failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def imap(server) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    c.login("alice", "alice-pw")
    return c


def server_messages(c: imaplib.IMAP4, mailbox: str) -> dict[bytes, set[bytes]]:
    """normalised message -> flags (without \\Recent) for every message in mailbox."""
    typ, data = c.select(mailbox, readonly=True)
    assert typ == "OK", (mailbox, data)
    if int(data[0]) == 0:
        return {}
    typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[])")
    assert typ == "OK"
    out: dict[bytes, set[bytes]] = {}
    items = [d for d in data if isinstance(d, tuple)]
    tails = [d for d in data if isinstance(d, bytes)]
    for n, (meta, body) in enumerate(items):
        text = meta + (tails[n] if n < len(tails) else b"")
        m = re.search(rb"FLAGS \(([^)]*)\)", text)
        assert m, text
        out[normalise(body)] = set(m.group(1).split()) - {b"\\Recent"}
    return out


def test_two_way_sync(server, setup):
    rc, root = setup
    inbox, nested, drafts = Maildir(root / "INBOX"), Maildir(root / "Lists/Python"), Maildir(root / "Drafts")

    # Round 0: mail on the server only.
    c = imap(server)
    assert c.append("INBOX", None, None, MSG_A)[0] == "OK"
    assert c.create("Lists/Python")[0] == "OK"
    assert c.append("Lists/Python", r"(\Seen)", None, MSG_B)[0] == "OK"
    c.logout()

    sync(rc)
    a_path = inbox.find(MSG_A)
    assert a_path is not None, f"INBOX message not pulled: {inbox.files()}"
    assert "S" not in Maildir.flags(a_path)
    b_path = nested.find(MSG_B)
    assert b_path is not None, f"nested-folder message not pulled: {list(root.rglob('*'))}"
    assert Maildir.flags(b_path) == "S"
    for name in ("Drafts", "Sent", "Trash"):
        assert (root / name / "cur").is_dir(), f"{name} not created locally"

    # Round 1: local changes pushed up.
    a_path = Maildir.set_flags(a_path, "FS")
    drafts.deliver("1700000000.draft1.testhost", DRAFT, "D")
    sync(rc)
    c = imap(server)
    got = server_messages(c, "INBOX")
    assert got == {normalise(MSG_A): {b"\\Seen", b"\\Flagged"}}
    got = server_messages(c, "Drafts")
    assert got == {normalise(DRAFT): {b"\\Draft"}}
    c.logout()

    # Round 2: a deletion on the server reaches the Maildir.
    c = imap(server)
    c.select("Lists/Python")
    c.store("1", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.logout()
    sync(rc)
    assert nested.find(MSG_B) is None and nested.files() == []
    assert inbox.find(MSG_A) is not None

    # Round 3: changes on both sides at once.
    c = imap(server)
    assert c.append("INBOX", None, None, MSG_C)[0] == "OK"
    c.select("Drafts")
    c.store("1", "+FLAGS", r"(\Answered)")
    c.logout()
    a_path = Maildir.set_flags(inbox.find(MSG_A), "S")           # unflag locally
    inbox.deliver("1700000001.local1.testhost", LOCAL_NEW)       # new local mail
    draft_path = drafts.find(DRAFT)
    draft_path.unlink()                                          # delete locally
    sync(rc)

    c_path = inbox.find(MSG_C)
    assert c_path is not None and "S" not in Maildir.flags(c_path)
    assert Maildir.flags(inbox.find(MSG_A)) == "S"
    assert drafts.files() == []
    c = imap(server)
    got = server_messages(c, "INBOX")
    assert got == {normalise(MSG_A): {b"\\Seen"}, normalise(MSG_C): set(),
                   normalise(LOCAL_NEW): set()}
    assert server_messages(c, "Drafts") == {}
    c.logout()

    # A sync with nothing to do changes nothing on either side.
    before_local = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()
                          and ".mbsyncstate" not in p.name and ".uidvalidity" not in p.name)
    sync(rc)
    after_local = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()
                         and ".mbsyncstate" not in p.name and ".uidvalidity" not in p.name)
    assert after_local == before_local
    c = imap(server)
    assert server_messages(c, "INBOX") == got
    c.logout()


@pytest.mark.parametrize("security", ["IMAPS", "STARTTLS"])
def test_sync_over_tls(server, tmp_path, security):
    """mbsync over implicit TLS and STARTTLS, trusting the server's self-signed
    certificate (data_dir/tls/cert.pem) as a host certificate, default AuthMechs."""
    cert = server.data_dir / "tls" / "cert.pem"
    assert cert.exists(), "server did not generate its TLS certificate"
    port = server.imaps_port if security == "IMAPS" else server.imap_port
    root = tmp_path / "mail"
    rc = write_rc(tmp_path / "mbsyncrc", root, port, "bob", "bob-pw", security, "*",
                  f"CertificateFile {cert}\nSystemCertificates no\n")
    marker = f"tls-{security}".encode()
    down = MSG_A.replace(b"<a@example.org>", b"<down-%s@example.org>" % marker)
    up = LOCAL_NEW.replace(b"<local@example.org>", b"<up-%s@example.org>" % marker)
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    c.login("bob", "bob-pw")
    assert c.append("INBOX", None, None, down)[0] == "OK"
    c.logout()

    sync(rc)
    inbox = Maildir(root / "INBOX")
    assert inbox.find(down) is not None
    inbox.deliver(f"1700000002.{security}.testhost", up, "S")
    sync(rc)

    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    c.login("bob", "bob-pw")
    got = server_messages(c, "INBOX")
    assert got[normalise(up)] == {b"\\Seen"}
    assert normalise(down) in got
    c.logout()
