"""The import engine: any ``Source`` into one account, through the store's
one ingest path (``Store.append``, DESIGN.md rule 2), resumable via the
journal, with progress and a summary. A dry run reads everything and writes
nothing (no mailbox, no message, no journal).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailbag.log import log_event
from mailbag.store import names
from mailbag.store.api import INBOX, Account, AppendItem, MailboxInfo, OverQuota, Store, StoreError
from mailbag.store.blobs import blob_id_of
from mailbag.transfer.journal import FILE_NAME, Journal, Pending, match_pending
from mailbag.transfer.model import (
    Candidate,
    FolderReport,
    Skipped,
    Source,
    SourceFolder,
    SourceMessage,
)
from mailbag.transfer.progress import Progress, human_bytes

log = logging.getLogger("mailbag.transfer")

BATCH_MESSAGES = 100
BATCH_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class ImportReport:
    source: str
    user: str
    dry_run: bool
    folders: list[FolderReport] = field(default_factory=list)
    recovered: int = 0            # pending rows of an interrupted run found stored
    retried: int = 0              # pending rows of an interrupted run not stored
    aborted: str | None = None

    @property
    def imported(self) -> int:
        return sum(f.imported for f in self.folders)

    @property
    def skipped(self) -> int:
        return sum(len(f.skipped) for f in self.folders)

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        lines = [f"{'Dry run: ' if self.dry_run else ''}{self.source} -> user {self.user}"]
        if self.recovered or self.retried:
            lines.append(f"  interrupted run: {self.recovered} messages were stored, "
                         f"{self.retried} will be imported again")
        for f in self.folders:
            created = (" (would be created)" if self.dry_run else " (created)") if f.created else ""
            lines.append(
                f"  {f.dest}{created}: {verb} {f.imported} ({human_bytes(f.bytes)}),"
                f" already imported {f.already}, skipped {len(f.skipped)}"
                f"  [from {f.source or '(top)'}, {f.seen} found]"
            )
        total_skipped = self.skipped
        lines.append(f"Total: {verb} {self.imported} messages, skipped {total_skipped}, "
                     f"already imported {sum(f.already for f in self.folders)}")
        if total_skipped:
            lines.append("Skipped:")
            for f in self.folders:
                for s in f.skipped:
                    lines.append(f"  {f.source or '(top)'}: {s.key}: {s.reason}")
        notes = [(f, note, n) for f in self.folders for note, n in Counter(f.notes).items()]
        if notes:
            lines.append("Notes:")
            for f, note, n in notes:
                lines.append(f"  {f.dest}: {note}" + (f" (x{n})" if n > 1 else ""))
        if self.aborted:
            lines.append(f"ABORTED: {self.aborted} (run the same command again to resume)")
        return "\n".join(lines)


def dest_name(prefix: str | None, name: str) -> str:
    """A source folder's mailbag name: the source's INBOX lands in ``prefix``
    (or INBOX), every other folder under ``prefix`` (or at the top)."""
    if not prefix:
        return name
    if name == INBOX:
        return prefix
    return f"{prefix}/{name}"


def journal_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


class Importer:
    def __init__(self, store: Store, source: Source, account: Account, journal: Journal,
                 *, prefix: str | None = None, dry_run: bool = False,
                 progress: Progress | None = None) -> None:
        self.store = store
        self.source = source
        self.account = account
        self.journal = journal
        self.prefix = prefix
        self.dry_run = dry_run
        self.progress = progress or Progress(verb="would import" if dry_run else "imported")
        self.report = ImportReport(source=source.identity, user=account.name, dry_run=dry_run)
        self._boxes: dict[str, MailboxInfo | None] = {}

    async def _mailbox(self, name: str, refresh: bool = False) -> MailboxInfo | None:
        if refresh or name not in self._boxes:
            self._boxes[name] = await self.store.get_mailbox(self.account.id, name)
        return self._boxes[name]

    async def run(self) -> ImportReport:
        try:
            if not self.dry_run:
                await self._recover()
            folders = self.source.folders()
            for index, folder in enumerate(folders, 1):
                await self._import_folder(folder, index, len(folders))
        except OverQuota as e:
            self.report.aborted = f"over quota: {e}"
        finally:
            self.progress.finish()
        log_event(log, "import-finished", user=self.account.name, source=self.source.identity,
                  dry_run=self.dry_run, imported=self.report.imported,
                  skipped=self.report.skipped, aborted=self.report.aborted)
        return self.report

    async def _recover(self) -> None:
        """Settle the pending rows a killed run left behind (see journal.py)."""
        pending = self.journal.pending()
        by_box: dict[tuple[str, int], list[Pending]] = {}
        for row in pending:
            by_box.setdefault((row.mailbox, row.uidvalidity), []).append(row)
        for (mailbox, uidvalidity), rows in by_box.items():
            box = await self._mailbox(mailbox, refresh=True)
            if box is None or box.uidvalidity != uidvalidity:
                self.journal.forget(rows)
                self.report.retried += len(rows)
                continue
            floor = min(r.floor for r in rows)
            records = await self.store.fetch_records(box.id, list(range(floor, box.uidnext)))
            matched, missing = match_pending(rows, [(r.uid, r.blob_id) for r in records])
            for row, uid in matched:
                self.journal.finish(row.folder, row.mailbox, [row.key], [uid], uidvalidity)
            self.journal.forget(missing)
            self.report.recovered += len(matched)
            self.report.retried += len(missing)

    async def _import_folder(self, folder: SourceFolder, index: int, count: int) -> None:
        dest_raw = dest_name(self.prefix, folder.name)
        report = FolderReport(source=folder.key, dest=dest_raw)
        self.report.folders.append(report)
        try:
            dest = names.normalize(dest_raw)
        except StoreError as e:
            report.skipped.append(Skipped("(folder)", f"invalid mailbox name: {e}"))
            return
        report.dest = dest
        box = await self._mailbox(dest)
        if box is None or box.noselect:
            report.created = True
            if not self.dry_run:
                box = await self.store.create_mailbox(self.account.id, dest)
                self._boxes[dest] = box
        done = {key for key, validity in self.journal.done(folder.key, dest).items()
                if await self._valid(dest, validity)}
        self.progress.start_folder(dest, index, count, None)
        batch: list[Candidate] = []
        batch_bytes = 0
        seen_keys: set[str] = set()
        for item in self.source.candidates(folder):
            if isinstance(item, Skipped):
                report.skipped.append(item)
                self.progress.advance(0, 0, 1)
                continue
            report.seen += 1
            if item.key in seen_keys:
                report.skipped.append(Skipped(item.key, "the same key twice in one folder"))
                continue
            seen_keys.add(item.key)
            if item.key in done:
                report.already += 1
                self.progress.advance(0, 0, 1)
                continue
            batch.append(item)
            if isinstance(item.payload, SourceMessage):
                batch_bytes += len(item.payload.data)
            if len(batch) >= BATCH_MESSAGES or batch_bytes >= BATCH_BYTES:
                await self._flush(folder, dest, batch, report)
                batch, batch_bytes = [], 0
        if batch:
            await self._flush(folder, dest, batch, report)
        self.progress.end_folder(
            f"{'would import' if self.dry_run else 'imported'} {report.imported}, "
            f"already {report.already}, skipped {len(report.skipped)}"
        )

    async def _valid(self, mailbox: str, uidvalidity: int) -> bool:
        box = await self._mailbox(mailbox)
        return box is not None and box.uidvalidity == uidvalidity

    async def _flush(self, folder: SourceFolder, dest: str, batch: Sequence[Candidate],
                     report: FolderReport) -> None:
        loaded = self.source.load(folder, batch)
        messages: list[SourceMessage] = []
        for item in loaded:
            if isinstance(item, Skipped):
                report.skipped.append(item)
            else:
                messages.append(item)
                report.notes.extend(item.notes)
        nbytes = sum(len(m.data) for m in messages)
        if self.dry_run or not messages:
            report.imported += len(messages)
            report.bytes += nbytes
            self.progress.advance(len(messages), nbytes, len(batch))
            return
        box = await self._mailbox(dest, refresh=True)
        assert box is not None
        self.journal.begin([
            Pending(folder=folder.key, key=m.key, mailbox=dest, uidvalidity=box.uidvalidity,
                    floor=box.uidnext, blob_id=blob_id_of(m.data))
            for m in messages
        ])
        items = [AppendItem(data=m.data, flags=m.flags, internaldate=m.internaldate)
                 for m in messages]
        result = await self.store.append(box.id, items)
        self.journal.finish(folder.key, dest, [m.key for m in messages], result.uids,
                            result.uidvalidity)
        report.imported += len(messages)
        report.bytes += nbytes
        self.progress.advance(len(messages), nbytes, len(batch))
