"""What every import source yields and what the import engine reports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SourceFolder:
    """One folder of a source.

    ``key`` identifies it inside the source (a path, a remote mailbox name);
    ``name`` is the mailbag name it maps to, "/"-separated, relative to the
    import's destination prefix (``INBOX`` for a source's inbox)."""

    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A message known by its journal key (stable: a Maildir unique name, a
    content hash, a UID) before its bytes are read. ``ref`` locates it for
    the reader (a file path); ``payload`` holds data a reader already has in
    memory (mbox), so ``load`` does not read it twice."""

    key: str
    ref: str = ""
    payload: SourceMessage | Skipped | None = None


@dataclass(frozen=True, slots=True)
class SourceMessage:
    key: str
    data: bytes
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None
    notes: tuple[str, ...] = ()       # things dropped on the way (shown in the summary)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A message (or file) that will not be imported, and why."""

    key: str
    reason: str


@dataclass(slots=True)
class FolderReport:
    source: str
    dest: str
    seen: int = 0                 # messages found in the source folder
    imported: int = 0             # appended now (or would be, in a dry run)
    already: int = 0              # imported by an earlier run
    bytes: int = 0
    created: bool = False         # the destination mailbox was (or would be) created
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Source(Protocol):
    """A readable foreign mail store.

    ``identity`` names the source in the import journal (an absolute path or
    ``imap://user@host:port``), so the same source resumes where it stopped.
    """

    identity: str

    def folders(self) -> list[SourceFolder]: ...

    def candidates(self, folder: SourceFolder) -> Iterator[Candidate | Skipped]: ...

    def load(self, folder: SourceFolder, batch: Sequence[Candidate]) -> list[SourceMessage | Skipped]: ...

    def close(self) -> None: ...
