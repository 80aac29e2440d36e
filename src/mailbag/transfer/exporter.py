"""``mailbag export``: an account's mailboxes as mbox files or a Maildir++ tree.

* mbox: ``DEST/NAME.mbox`` per mailbox (``A/B`` -> ``DEST/A/B.mbox``, so a
  mailbox and its children never clash), mboxrd quoting, the From_ line
  carrying INTERNALDATE (UTC, to the second), flags in Status/X-Status/
  X-Keywords (mbox.py).
* maildir: Maildir++ (INBOX at ``DEST/cur``, ``A/B`` at ``DEST/.A.B`` with a
  ``maildirfolder`` marker), every message in ``cur/`` named
  ``SECONDS.MmailbagUID.UIDVALIDITY,S=SIZE:2,FLAGS``, mtime = INTERNALDATE,
  keywords through ``dovecot-keywords`` (maildir.py), UIDs and their order
  through ``dovecot-uidlist``.

Bytes are written exactly as stored, so ``mailbag import`` of an export gives
back the same messages, flags and INTERNALDATEs. Messages are streamed
mailbox by mailbox in small chunks; nothing holds a whole mailbox.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mailbag.store.api import INBOX, Account, MailboxInfo, MessageRecord, Store
from mailbag.transfer import flagmap, maildir, mbox
from mailbag.transfer.progress import Progress, human_bytes

ExportFormat = Literal["mbox", "maildir"]
CHUNK = 200
MAX_KEYWORD_LETTERS = 26


class ExportError(Exception):
    pass


@dataclass(slots=True)
class ExportReport:
    dest: Path
    format: str
    mailboxes: list[tuple[str, Path, int, int]] = field(default_factory=list)  # name, path, n, bytes
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"exported to {self.dest} ({self.format})"]
        for name, path, n, size in self.mailboxes:
            lines.append(f"  {name} -> {path}: {n} messages ({human_bytes(size)})")
        total = sum(m[2] for m in self.mailboxes)
        lines.append(f"Total: {total} messages in {len(self.mailboxes)} mailboxes")
        if self.notes:
            lines.append("Notes:")
            lines.extend(f"  {n}" for n in self.notes)
        return "\n".join(lines)


def mbox_path(dest: Path, name: str) -> Path:
    parts = name.split("/")
    return dest.joinpath(*parts[:-1], parts[-1] + mbox.MBOX_SUFFIX)


def maildir_path(dest: Path, name: str) -> Path:
    if name == INBOX:
        return dest
    return dest / ("." + ".".join(maildir.encode_component(p) for p in name.split("/")))


def check_dest(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest} exists and is not an empty directory")


async def _records(store: Store, box: MailboxInfo) -> list[list[int]]:
    uids = [m.uid for m in await store.message_list(box.id)]
    return [uids[i:i + CHUNK] for i in range(0, len(uids), CHUNK)]


async def export_account(store: Store, account: Account, dest: Path, fmt: ExportFormat,
                         *, folder: str | None = None,
                         progress: Progress | None = None) -> ExportReport:
    check_dest(dest)
    progress = progress or Progress(verb="exported")
    report = ExportReport(dest=dest, format=fmt)
    boxes = [b for b in await store.list_mailboxes(account.id) if not b.noselect]
    if folder is not None:
        boxes = [b for b in boxes if b.name == folder or (folder.casefold() == "inbox" and b.name == INBOX)]
        if not boxes:
            raise ExportError(f"no mailbox {folder!r} for user {account.name}")
    boxes.sort(key=lambda b: (b.name != INBOX, b.name))
    dest.mkdir(parents=True, exist_ok=True)
    for index, box in enumerate(boxes, 1):
        progress.start_folder(box.name, index, len(boxes), box.messages)
        if fmt == "mbox":
            path, n, size = await _export_mbox(store, box, dest, progress)
        else:
            path, n, size = await _export_maildir(store, box, dest, progress, report)
        report.mailboxes.append((box.name, path, n, size))
        progress.end_folder(f"{n} messages")
    progress.finish()
    return report


async def _export_mbox(store: Store, box: MailboxInfo, dest: Path,
                       progress: Progress) -> tuple[Path, int, int]:
    path = mbox_path(dest, box.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = size = 0
    with open(path, "wb") as out:
        for chunk in await _records(store, box):
            for rec in await store.fetch_records(box.id, chunk):
                data = await store.read_blob(rec.blob_id)
                mbox.write_message(out, data, rec.flags, rec.internaldate)
                n += 1
                size += len(data)
                progress.advance(1, len(data))
        out.flush()
        os.fsync(out.fileno())
    return path, n, size


def _keyword_letters(path: Path, words: Sequence[str], report: ExportReport,
                     mailbox: str) -> dict[str, str]:
    ordered = sorted({w.casefold(): w for w in words}.values(), key=str.casefold)
    if len(ordered) > MAX_KEYWORD_LETTERS:
        lost = ordered[MAX_KEYWORD_LETTERS:]
        report.notes.append(f"{mailbox}: Maildir holds 26 keywords per folder; "
                            f"not exported: {' '.join(lost)}")
        ordered = ordered[:MAX_KEYWORD_LETTERS]
    if ordered:
        (path / maildir.KEYWORDS_FILE).write_text(
            "".join(f"{i} {w}\n" for i, w in enumerate(ordered)), "utf-8")
    return {w.casefold(): chr(ord("a") + i) for i, w in enumerate(ordered)}


def maildir_filename(rec: MessageRecord, uidvalidity: int, info: str) -> str:
    stamp = int(rec.internaldate.timestamp())
    return f"{stamp}.M{rec.uid}P{uidvalidity}.mailbag,S={rec.size}{maildir.INFO_SEPARATOR}{info}"


async def _export_maildir(store: Store, box: MailboxInfo, dest: Path, progress: Progress,
                          report: ExportReport) -> tuple[Path, int, int]:
    path = maildir_path(dest, box.name)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    if path != dest:
        (path / "maildirfolder").touch()  # Maildir++: marks a subfolder
    chunks = await _records(store, box)
    words: set[str] = set()
    for chunk in chunks:
        for rec in await store.fetch_records(box.id, chunk):
            words.update(flagmap.keywords_of(rec.flags))
    letters = _keyword_letters(path, sorted(words), report, box.name)
    n = size = 0
    uidlist: list[str] = []
    for chunk in chunks:
        for rec in await store.fetch_records(box.id, chunk):
            data = await store.read_blob(rec.blob_id)
            name = maildir_filename(rec, box.uidvalidity, flagmap.maildir_info(rec.flags, letters))
            uidlist.append(f"{rec.uid} :{name}\n")
            tmp = path / "tmp" / name
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            stamp = rec.internaldate.timestamp()
            os.utime(tmp, (stamp, stamp))
            os.rename(tmp, path / "cur" / name)
            n += 1
            size += len(data)
            progress.advance(1, len(data))
    # Dovecot's UID list (format 3): keeps UIDs and their order for Dovecot
    # and for our own re-import (file times are INTERNALDATEs, not UID order).
    (path / "dovecot-uidlist").write_text(
        f"3 V{box.uidvalidity} N{box.uidnext}\n" + "".join(uidlist), "utf-8")
    return path, n, size
