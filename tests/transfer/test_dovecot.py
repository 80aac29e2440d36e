"""Against a real Dovecot on loopback: a Maildir written by mbsync from it,
a direct IMAP import from it, and export -> re-import of what came in, each
compared folder by folder with Dovecot's own copy (counts, flags, Message-IDs,
byte-identical messages, INTERNALDATE where the path keeps it)."""

from __future__ import annotations

import imaplib
import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from dovecot_ref import PASSWORD, Dovecot

from conftest import Msg, Snapshot
from mailbag.transfer.imapsource import parse_internaldate
from mailbag.wire.mutf7 import decode_mutf7, encode_mutf7

MBSYNC = shutil.which("mbsync")

FOLDERS = ("INBOX", "Lists/Python", "Archive/2024", "Reçus")
FLAG_SETS = ((), (r"\Seen",), (r"\Seen", r"\Answered"), (r"\Flagged", "$Label1"),
             (r"\Draft",), (r"\Seen", "work", "$Forwarded"), (r"\Deleted", r"\Seen"))


def make_message(folder: str, n: int) -> bytes:
    body = (f"Message {n} in {folder}.\r\nFrom the start of a line, with 8-bit: caf\u00e9.\r\n"
            f">From already quoted\r\n").encode()
    if n % 3 == 0:
        body += b"--\r\n" + b"long line " * 50 + b"\r\n"
    return (f"From: Sender {n} <s{n}@example.org>\r\nTo: src@example.org\r\n"
            f"Subject: =?utf-8?q?n=C2=B0{n}?= {folder}\r\n"
            f"Date: Thu, 05 Mar 2026 10:{n:02d}:00 +0000\r\n"
            f"Message-ID: <{n}.{abs(hash(folder)) % 10**8}@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body


def imap_login(d: Dovecot, user: str) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", d.port, timeout=30)
    c.login(user, PASSWORD)
    return c


def quoted(name: str) -> str:
    return '"' + encode_mutf7(name).decode() + '"'


@pytest.fixture(scope="module")
def source(dovecot: Dovecot) -> Dovecot:
    c = imap_login(dovecot, "src")
    n = 0
    for folder in FOLDERS:
        if folder != "INBOX":
            assert c.create(quoted(folder))[0] == "OK"
        for i in range(len(FLAG_SETS) + (3 if folder == "INBOX" else 0)):
            n += 1
            flags = FLAG_SETS[i % len(FLAG_SETS)]
            when = f'"{(n % 27) + 1:02d}-Feb-2024 0{n % 10}:1{n % 10}:2{n % 10} +0{n % 3}00"'
            typ, data = c.append(quoted(folder), "(" + " ".join(flags) + ")", when,
                                 make_message(folder, n))
            assert typ == "OK", data
    c.logout()
    return dovecot


def dovecot_snapshot(d: Dovecot, user: str) -> Snapshot:
    c = imap_login(d, user)
    out: Snapshot = {}
    typ, listing = c.list('""', "*")
    names = []
    for line in listing:
        m = re.match(rb'\(([^)]*)\) "(.)" (.*)', line)
        assert m, line
        if b"\\noselect" in m.group(1).lower() or b"\\nonexistent" in m.group(1).lower():
            continue
        name = m.group(3).strip(b'"')
        names.append(decode_mutf7(name))
    for name in names:
        typ, data = c.select(quoted(name), readonly=True)
        assert typ == "OK"
        if int(data[0]) == 0:
            continue
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        msgs = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta = item[0]
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
            date = re.search(rb'INTERNALDATE "([^"]+)"', meta)
            uid = int(re.search(rb"UID (\d+)", meta).group(1))
            fl = frozenset(f.casefold() for f in flags.group(1).decode().split()) - {"\\recent"}
            msgs.append((uid, Msg(item[1], fl, int(parse_internaldate(date.group(1)).timestamp()))))
        out[name] = [m for _, m in sorted(msgs, key=lambda x: x[0])]
    c.logout()
    return out


def without(snap: Snapshot, *, keywords: bool = True, dates: bool = True) -> Snapshot:
    def one(m: Msg) -> Msg:
        flags = m.flags if keywords else frozenset(f for f in m.flags if f.startswith("\\"))
        return Msg(m.data, flags, m.internaldate if dates else 0)

    return {k: [one(m) for m in v] for k, v in snap.items()}


def message_ids(snap: Snapshot) -> dict[str, list[bytes]]:
    return {k: [re.search(rb"Message-ID: (<[^>]+>)", m.data).group(1) for m in v]
            for k, v in snap.items()}


def test_source_is_populated(source):
    snap = dovecot_snapshot(source, "src")
    assert set(snap) == set(FOLDERS)
    assert sum(len(v) for v in snap.values()) == 4 * len(FLAG_SETS) + 3


@pytest.mark.skipif(MBSYNC is None, reason="mbsync not installed (apt-get install isync)")
def test_mbsync_maildir_import_matches_dovecot(source, mailbag, tmp_path):
    root = tmp_path / "Maildir"
    root.mkdir()
    version = subprocess.run([MBSYNC, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", version)
    assert m, version
    tls_kw = "TLSType" if (int(m.group(1)), int(m.group(2))) >= (1, 5) else "SSLType"
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount dove\nHost 127.0.0.1\nPort {source.port}\nUser src\nPass {PASSWORD}\n"
        f"{tls_kw} None\nAuthMechs LOGIN\n\n"
        "IMAPStore far\nAccount dove\n\n"
        f"MaildirStore near\nInbox {root}\nSubFolders Maildir++\n\n"
        "Channel pull\nFar :far:\nNear :near:\nPatterns *\nCreate Near\nSync Pull\n"
        "SyncState *\n"
    )
    r = subprocess.run([MBSYNC, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120,
                       env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / ".Lists.Python" / "cur").is_dir(), sorted(p.name for p in root.iterdir())

    r = mailbag.cli("import", "maildir", str(root), "--user", "alice")
    assert r.returncode == 0, r.stdout + r.stderr
    ours = mailbag.snapshot("alice")
    theirs = dovecot_snapshot(source, "src")
    assert {k: len(v) for k, v in ours.items()} == {k: len(v) for k, v in theirs.items()}
    assert message_ids(ours) == message_ids(theirs)
    # mbsync 1.4 carries system flags only (no keywords; $Forwarded only as P
    # from 1.5) and does not keep INTERNALDATE as the file time.
    ours_cmp = without(ours, keywords=False, dates=False)
    theirs_cmp = without(theirs, keywords=False, dates=False)
    for folder in theirs:
        for a, b in zip(ours_cmp[folder], theirs_cmp[folder], strict=True):
            assert a.data == b.data          # byte-identical, header and body
            assert a.flags == b.flags, (folder, a.flags, b.flags)


def _imap_import(source: Dovecot, mailbag, user: str, *extra: str):
    return mailbag.cli("import", "imap", "127.0.0.1", "--port", str(source.port), "--tls", "none",
                       "--login", "src", "--password-stdin", "--user", user, *extra,
                       stdin=PASSWORD + "\n")


def test_imap_import_matches_dovecot(source, mailbag):
    r = _imap_import(source, mailbag, "bob")
    assert r.returncode == 0, r.stdout + r.stderr
    theirs = dovecot_snapshot(source, "src")
    assert mailbag.snapshot("bob") == theirs    # bytes, flags, keywords, INTERNALDATE

    r = _imap_import(source, mailbag, "bob")     # nothing new the second time
    assert "Total: imported 0 messages" in r.stdout, r.stdout
    assert mailbag.snapshot("bob") == theirs


def test_imap_import_dry_run_and_prefix(source, mailbag):
    r = _imap_import(source, mailbag, "carol", "--dry-run", "--folder", "Old")
    assert r.returncode == 0 and "Old/Lists/Python (would be created)" in r.stdout, r.stdout
    assert mailbag.snapshot("carol") == {}
    _imap_import(source, mailbag, "carol", "--folder", "Old")
    assert set(mailbag.snapshot("carol")) == {"Old", "Old/Lists/Python", "Old/Archive/2024",
                                              "Old/Reçus"}


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_export_reimport_matches_dovecot(source, mailbag, tmp_path, fmt):
    _imap_import(source, mailbag, "bob")
    out = tmp_path / f"export-{fmt}"
    r = mailbag.cli("export", "--user", "bob", "--format", fmt, str(out))
    assert r.returncode == 0, r.stderr
    r = mailbag.cli("import", fmt, str(out), "--user", "dave")
    assert r.returncode == 0, r.stdout + r.stderr
    theirs = dovecot_snapshot(source, "src")
    assert mailbag.snapshot("dave") == mailbag.snapshot("bob") == theirs


def test_wrong_password_is_a_clear_error(source, mailbag):
    r = mailbag.cli("import", "imap", "127.0.0.1", "--port", str(source.port), "--tls", "none",
                    "--login", "src", "--password-stdin", "--user", "bob", stdin="nope\n",
                    check=False)
    assert r.returncode == 1 and "imap: 127.0.0.1" in r.stderr and "nope" not in r.stderr


def test_plaintext_to_a_remote_host_is_refused(mailbag):
    r = mailbag.cli("import", "imap", "mail.example.org", "--tls", "none", "--login", "x",
                    "--password-stdin", "--user", "bob", stdin="pw\n", check=False)
    assert r.returncode == 1 and "clear text" in r.stderr


def test_dates_round_trip_to_the_second():
    assert parse_internaldate(b" 5-Mar-2026 10:00:00 -0130") == datetime(
        2026, 3, 5, 11, 30, tzinfo=UTC)


def test_dovecot_reads_our_maildir_export(source, mailbag, tmp_path):
    """Nobody is locked in: Dovecot serves a mailbag Maildir export as the
    same mailboxes (messages, flags, keywords, INTERNALDATE from the mtime)."""
    _imap_import(source, mailbag, "bob")
    home = source.dir / "mail" / "src2"
    r = mailbag.cli("export", "--user", "bob", "--format", "maildir", str(home))
    assert r.returncode == 0, r.stderr
    subprocess.run(["chown", "-R", "dovecot:dovecot", str(home)], check=True)
    theirs = dovecot_snapshot(source, "src")
    assert dovecot_snapshot(source, "src2") == theirs
