"""Resuming an interrupted import never duplicates and never loses a message:
a prefix imported first, a process killed mid-import, and a crash injected
between the store's append and the journal's record of it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from conftest import Mailbag
from mailbag.store.sqlite import SqliteStore
from mailbag.transfer.importer import Importer, journal_path
from mailbag.transfer.journal import Journal
from mailbag.transfer.mbox import MboxSource


def mbox_bytes(start: int, stop: int) -> bytes:
    out = bytearray()
    for n in range(start, stop):
        out += (b"From sender@example.org Thu Mar  5 10:%02d:%02d 2026\n"
                b"From: s%d@example.org\nSubject: number %d\nMessage-ID: <n%d@example.org>\n\n"
                b"Body of %d\n%s\n" % (n // 60 % 60, n % 60, n, n, n, n, b"x" * (n % 300)))
    return bytes(out)


def message_ids(mailbag: Mailbag, user: str, box: str = "INBOX") -> Counter[bytes]:
    msgs = mailbag.snapshot(user).get(box, [])
    return Counter(m.data.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in msgs)


def test_prefix_then_whole(mailbag, tmp_path):
    path = tmp_path / "grow.mbox"
    path.write_bytes(mbox_bytes(0, 120))
    r = mailbag.cli("import", "mbox", str(path), "--user", "alice")
    assert "imported 120" in r.stdout
    path.write_bytes(mbox_bytes(0, 250))
    r = mailbag.cli("import", "mbox", str(path), "--user", "alice")
    assert "imported 130" in r.stdout and "already imported 120" in r.stdout, r.stdout
    ids = message_ids(mailbag, "alice")
    assert len(ids) == 250 and set(ids.values()) == {1}


def test_killed_midway(mailbag, tmp_path):
    path = tmp_path / "big.mbox"
    total = 2500
    path.write_bytes(mbox_bytes(0, total))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailbag.cli.main", "import", "mbox", str(path), "--user",
         "alice", "--config", str(mailbag.config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    # Plain (non-tty) progress prints a line every 1000 messages: kill at the first.
    for line in proc.stderr:
        if line.startswith(b"..."):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = sum(message_ids(mailbag, "alice").values())
    assert 1000 <= partial < total, partial

    r = mailbag.cli("import", "mbox", str(path), "--user", "alice")
    assert r.returncode == 0, r.stdout + r.stderr
    ids = message_ids(mailbag, "alice")
    assert len(ids) == total and set(ids.values()) == {1}


class CrashAfterAppend(Journal):
    """Dies like a killed process right after the store committed a batch,
    before the journal recorded its UIDs."""

    def finish(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt("simulated crash")


def _run(mailbag: Mailbag, path, journal_cls: type[Journal]):
    async def go():
        async with SqliteStore(mailbag.data_dir) as store:
            account = await store.get_account("alice")
            source = MboxSource(path)
            journal = journal_cls(journal_path(mailbag.data_dir), account.name, source.identity)
            try:
                return await Importer(store, source, account, journal).run()
            finally:
                journal.close()

    return asyncio.run(go())


def test_crash_between_append_and_journal(mailbag, tmp_path):
    path = tmp_path / "c.mbox"
    path.write_bytes(mbox_bytes(0, 150))       # two batches: 100 + 50
    with pytest.raises(KeyboardInterrupt):
        _run(mailbag, path, CrashAfterAppend)
    assert sum(message_ids(mailbag, "alice").values()) == 100   # stored, not recorded
    report = _run(mailbag, path, Journal)
    assert report.recovered == 100 and report.retried == 0
    assert report.imported == 50
    ids = message_ids(mailbag, "alice")
    assert len(ids) == 150 and set(ids.values()) == {1}


def test_maildir_flag_change_between_runs_is_no_new_message(mailbag, tmp_path):
    box = tmp_path / "md"
    for d in ("cur", "new", "tmp"):
        (box / d).mkdir(parents=True)
    (box / "cur" / "1.a.host:2,").write_bytes(b"Subject: a\nMessage-ID: <a@x>\n\nA\n")
    mailbag.cli("import", "maildir", str(box), "--user", "alice")
    os.rename(box / "cur" / "1.a.host:2,", box / "cur" / "1.a.host:2,S")
    r = mailbag.cli("import", "maildir", str(box), "--user", "alice")
    assert "already imported 1" in r.stdout
    assert sum(message_ids(mailbag, "alice").values()) == 1


def test_recreated_mailbox_is_imported_again(mailbag, tmp_path):
    path = tmp_path / "a.mbox"
    path.write_bytes(mbox_bytes(0, 3))
    mailbag.cli("import", "mbox", str(path), "--user", "alice", "--folder", "Gone")

    async def drop():
        async with SqliteStore(mailbag.data_dir) as store:
            account = await store.get_account("alice")
            await store.delete_mailbox(account.id, "Gone")

    asyncio.run(drop())
    r = mailbag.cli("import", "mbox", str(path), "--user", "alice", "--folder", "Gone")
    assert "imported 3" in r.stdout, r.stdout
    assert sum(message_ids(mailbag, "alice", "Gone").values()) == 3
