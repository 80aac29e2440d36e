"""Maildir / Maildir++ import (info flags, dovecot-keywords, mtime as
INTERNALDATE, tmp/ skipped, modified UTF-7 names) and the Maildir export ->
import round trip."""

from __future__ import annotations

import os
from pathlib import Path

from mailbag.transfer import maildir


def deliver(folder: Path, name: str, data: bytes, mtime: int, sub: str = "cur") -> Path:
    for d in ("cur", "new", "tmp"):
        (folder / d).mkdir(parents=True, exist_ok=True)
    path = folder / sub / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def msg(n: int, extra: bytes = b"") -> bytes:
    return (b"From: sender%d@example.org\nSubject: message %d\nMessage-ID: <m%d@example.org>\n"
            % (n, n, n) + extra + b"\nBody %d\nFrom a line start\n" % n)


def build_tree(root: Path) -> None:
    deliver(root, "1000.a.host:2,S", msg(1), 1_000_000_000)
    deliver(root, "1001.b.host", msg(2), 1_000_000_100, sub="new")
    deliver(root, "1002.c.host:2,FRab", msg(3, b"X-TUID: abcdefgh\n"), 1_000_000_200)
    (root / "dovecot-keywords").write_text("0 $Label1\n1 work\n")
    deliver(root / ".Lists.Python", "2000.d.host:2,DT", msg(4), 1_100_000_000)
    deliver(root / ".Lists.Python", "2001.e.host:2,P", msg(5), 1_100_000_050)
    deliver(root / ".Re&AOc-us", "3000.f.host:2,S", msg(6), 1_200_000_000)
    (root / "tmp" / "4000.unfinished.host").write_bytes(msg(7))


def test_maildir_tree_import(mailbag, tmp_path):
    root = tmp_path / "Maildir"
    build_tree(root)
    r = mailbag.cli("import", "maildir", str(root), "--user", "alice")
    # Something was skipped (the tmp/ file): exit status 2, named in the summary.
    assert r.returncode == 2, r.stdout + r.stderr
    assert "tmp/4000.unfinished.host: in tmp/" in r.stdout
    got = mailbag.snapshot("alice")
    assert set(got) == {"INBOX", "Lists/Python", "Reçus"}
    inbox = got["INBOX"]
    assert [m.internaldate for m in inbox] == [1_000_000_000, 1_000_000_100, 1_000_000_200]
    assert [m.flags for m in inbox] == [{"\\seen"}, set(), {"\\flagged", "\\answered",
                                                             "$label1", "work"}]
    assert inbox[0].data == msg(1).replace(b"\n", b"\r\n")
    assert inbox[2].data == msg(3).replace(b"\n", b"\r\n")  # X-TUID removed
    lists = got["Lists/Python"]
    assert [m.flags for m in lists] == [{"\\draft", "\\deleted"}, {"$forwarded"}]
    assert got["Reçus"][0].data == msg(6).replace(b"\n", b"\r\n")


def test_single_maildir_into_folder(mailbag, tmp_path):
    box = tmp_path / "one"
    deliver(box, "1.x.host:2,S", msg(1), 1_000_000_000)
    r = mailbag.cli("import", "maildir", str(box), "--user", "alice", "--folder", "Imported/Old")
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(mailbag.snapshot("alice")) == ["Imported/Old"]


def test_folder_name_codec():
    for name in ("Reçus", "a.b", "100%", "日本語", "A&B"):
        assert maildir.decode_component(maildir.encode_component(name)) == name


def test_maildir_export_reimport_round_trip(mailbag, tmp_path):
    root = tmp_path / "Maildir"
    build_tree(root)
    mailbag.cli("import", "maildir", str(root), "--user", "alice")
    mailbag.cli("import", "maildir", str(root / ".Lists.Python"), "--user", "alice",
                "--folder", "dots.in.name")
    out = tmp_path / "export"
    r = mailbag.cli("export", "--user", "alice", "--format", "maildir", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "cur").is_dir() and (out / ".Lists.Python" / "maildirfolder").exists()
    assert (out / ".Re&AOc-us" / "cur").is_dir()      # modified UTF-7, as Dovecot names it
    assert (out / ".dots%2Ein%2Ename" / "cur").is_dir()
    names = sorted(p.name.split(":2,")[1] for p in (out / "cur").iterdir())
    assert names == ["", "FRab", "S"]
    assert (out / "dovecot-keywords").read_text() == "0 $Label1\n1 work\n"

    r = mailbag.cli("import", "maildir", str(out), "--user", "bob")
    assert r.returncode == 0, r.stdout + r.stderr
    alice, bob = mailbag.snapshot("alice"), mailbag.snapshot("bob")
    assert set(alice) == {"INBOX", "Lists/Python", "Reçus", "dots.in.name"}
    assert bob == alice


def test_export_refuses_a_non_empty_destination(mailbag, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "file").write_text("x")
    r = mailbag.cli("export", "--user", "alice", "--format", "maildir", str(out), check=False)
    assert r.returncode == 1 and "not an empty directory" in r.stderr
