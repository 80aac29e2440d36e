"""``--dry-run`` reads everything, reports, and writes nothing: no mailbox,
no message, no blob, no journal."""

from __future__ import annotations

import os

from mailbag.transfer.importer import journal_path


def state(mailbag):
    blobs = sorted(p.name for p in (mailbag.data_dir / "blobs").rglob("*") if p.is_file())
    return mailbag.snapshot("alice", with_empty=True), blobs


def test_dry_run_writes_nothing(mailbag, tmp_path):
    root = tmp_path / "Maildir"
    for folder in (root, root / ".Sub.Folder"):
        for d in ("cur", "new", "tmp"):
            (folder / d).mkdir(parents=True, exist_ok=True)
    (root / "cur" / "1.a.h:2,S").write_bytes(b"Subject: one\n\nA\n")
    (root / ".Sub.Folder" / "cur" / "2.b.h:2,").write_bytes(b"Subject: two\n\nB\n")
    (root / ".Sub.Folder" / "cur" / "3.c.h:2,").write_bytes(b"")
    os.utime(root / "cur" / "1.a.h:2,S", (1_000_000_000, 1_000_000_000))

    before = state(mailbag)
    r = mailbag.cli("import", "maildir", str(root), "--user", "alice", "--dry-run")
    assert r.returncode == 2, r.stdout + r.stderr          # the empty file is skipped
    assert "Dry run" in r.stdout
    assert "INBOX: would import 1" in r.stdout
    assert "Sub/Folder (would be created): would import 1" in r.stdout
    assert "3.c.h: empty file" in r.stdout
    assert state(mailbag) == before
    assert not journal_path(mailbag.data_dir).exists()

    # The real run does what the dry run announced.
    r = mailbag.cli("import", "maildir", str(root), "--user", "alice")
    assert "Sub/Folder (created): imported 1" in r.stdout
    after = mailbag.snapshot("alice")
    assert len(after["INBOX"]) == 1 and len(after["Sub/Folder"]) == 1

    # A dry run after a real one knows what is already there.
    r = mailbag.cli("import", "maildir", str(root), "--user", "alice", "--dry-run")
    assert "INBOX: would import 0 (0 B), already imported 1" in r.stdout


def test_unknown_user_is_a_clear_error(mailbag, tmp_path):
    path = tmp_path / "x.mbox"
    path.write_bytes(b"From a Thu Mar  5 10:00:00 2026\nSubject: x\n\nx\n")
    r = mailbag.cli("import", "mbox", str(path), "--user", "nobody", check=False)
    assert r.returncode == 1 and "no such user nobody" in r.stderr
