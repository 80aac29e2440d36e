"""Maildir and Maildir++ trees: reading and writing.

Maildir (https://cr.yp.to/proto/maildir.html): a folder is a directory with
``cur/``, ``new/`` and ``tmp/``; a message is one file named
``UNIQUE:2,FLAGS`` (``new/`` files have no info). ``tmp/`` holds deliveries in
progress and is never imported. Maildir++ (Courier, Dovecot's default layout)
keeps subfolders as ``.A.B`` directories beside the inbox's ``cur/``; the "fs"
layout (mbsync ``SubFolders Verbatim``) nests them as ``A/B``. Both are read.
Folder names are modified UTF-7 when they decode as such (Dovecot's default),
UTF-8 otherwise; the exporter writes Maildir++ with modified UTF-7 names and
escapes "." inside a name component as ``%2E`` (and "%" as ``%25``).

INTERNALDATE is the file's mtime (Dovecot's convention); the exporter sets
it. Keywords use Dovecot's ``dovecot-keywords`` file (a-z letters, at most 26
per folder). Line ends are made CRLF and mbsync's ``X-TUID`` bookkeeping header
is removed, unless headers are kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailbag.transfer import flagmap, rfc822
from mailbag.transfer.model import Candidate, Skipped, SourceFolder, SourceMessage
from mailbag.wire.mutf7 import decode_mutf7, encode_mutf7

KEYWORDS_FILE = "dovecot-keywords"
BOOKKEEPING_HEADERS = (b"x-tuid",)
INFO_SEPARATOR = ":2,"
_SKIP_NAMES = {"cur", "new", "tmp"}


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def decode_component(raw: str) -> str:
    text = raw.replace("%2E", ".").replace("%2e", ".").replace("%2F", "/").replace("%25", "%")
    if "&" in text:
        try:
            return decode_mutf7(text)
        except ValueError:
            pass  # a UTF-8 name that happens to hold "&"
    return text


def encode_component(name: str) -> str:
    text = encode_mutf7(name).decode("ascii")
    return text.replace("%", "%25").replace(".", "%2E")


def read_keywords(folder: Path) -> dict[str, str]:
    """letter -> keyword from ``dovecot-keywords`` ("0 $Label1" lines)."""
    out: dict[str, str] = {}
    try:
        text = (folder / KEYWORDS_FILE).read_text("utf-8", "replace")
    except OSError:
        return out
    for line in text.splitlines():
        number, _, word = line.strip().partition(" ")
        if number.isdigit() and int(number) < 26 and word:
            out[chr(ord("a") + int(number))] = word.strip()
    return out


def natural_key(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def read_uidlist(folder: Path) -> dict[str, int]:
    """unique name -> UID from Dovecot's ``dovecot-uidlist`` (version 3:
    a header line, then ``UID [extensions] :FILENAME`` lines)."""
    out: dict[str, int] = {}
    try:
        lines = (folder / "dovecot-uidlist").read_text("utf-8", "replace").splitlines()
    except OSError:
        return out
    for line in lines[1:]:
        uid, _, rest = line.partition(" ")
        _, colon, filename = rest.partition(":")
        if uid.isdigit() and colon:
            out[split_name(filename)[0]] = int(uid)
    return out


def split_name(filename: str) -> tuple[str, str | None]:
    """(unique part, info letters or None) of a Maildir file name."""
    for sep in (INFO_SEPARATOR, "!2,", ";2,"):  # ":" is not allowed everywhere
        if sep in filename:
            unique, info = filename.rsplit(sep, 1)
            return unique, info
    return filename, None


class MaildirSource:
    """A single Maildir, or a tree (Maildir++ ``.A.B`` or nested ``A/B``)."""

    def __init__(self, path: Path, *, keep_headers: bool = False) -> None:
        self.path = path.resolve()
        self.identity = f"maildir:{self.path}"
        self.keep_headers = keep_headers

    def folders(self) -> list[SourceFolder]:
        found: list[SourceFolder] = []
        if is_maildir(self.path):
            found.append(SourceFolder(key="", name="INBOX"))
        for dirpath, dirnames, _files in os.walk(self.path):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_NAMES)
            for d in dirnames:
                full = here / d
                if not is_maildir(full):
                    continue
                rel = full.relative_to(self.path)
                if len(rel.parts) == 1 and d.startswith(".") and len(d) > 1:
                    parts = [decode_component(p) for p in d[1:].split(".")]
                else:
                    parts = [decode_component(p) for p in rel.parts]
                name = "/".join(parts)
                if name.casefold() == "inbox":
                    name = "INBOX"
                found.append(SourceFolder(key=str(rel), name=name))
        return found

    def _dir(self, folder: SourceFolder) -> Path:
        return self.path / folder.key if folder.key else self.path

    def candidates(self, folder: SourceFolder) -> Iterator[Candidate | Skipped]:
        base = self._dir(folder)
        tmp = base / "tmp"
        if tmp.is_dir():
            for entry in sorted(tmp.iterdir()):
                if entry.is_file():
                    yield Skipped(f"tmp/{entry.name}", "in tmp/: a delivery that never finished")
        uid_order = read_uidlist(base)
        entries: list[tuple[tuple[object, ...], str, str]] = []
        for sub in ("cur", "new"):
            with os.scandir(base / sub) as it:
                for e in it:
                    if e.name.startswith(".") or not e.is_file():
                        continue
                    unique = split_name(e.name)[0]
                    uid = uid_order.get(unique)
                    # Dovecot's UID order when it is known; otherwise oldest first,
                    # ties (one second) broken by the name's numbers (mbsync's
                    # "time.pid_N.host" counts up), so UIDs follow arrival order.
                    order = (0, uid) if uid is not None else (1, int(e.stat().st_mtime),
                                                               natural_key(e.name))
                    entries.append((order, sub, e.name))
        for _order, sub, name in sorted(entries):
            unique, _info = split_name(name)
            yield Candidate(key=unique, ref=f"{sub}/{name}")

    def load(self, folder: SourceFolder, batch: Sequence[Candidate]) -> list[SourceMessage | Skipped]:
        base = self._dir(folder)
        keywords = read_keywords(base)
        out: list[SourceMessage | Skipped] = []
        for cand in batch:
            path = base / cand.ref
            unique, info = cand.key, split_name(path.name)[1]
            try:
                data = path.read_bytes()
                mtime = path.stat().st_mtime
            except OSError as e:
                out.append(Skipped(unique, f"unreadable: {e.strerror or e}"))
                continue
            if not data.strip():
                out.append(Skipped(unique, "empty file"))
                continue
            raw_flags, notes = flagmap.maildir_flags(info or "", keywords)
            flags, more = flagmap.clean_flags(raw_flags)
            data = rfc822.to_crlf(data)
            if not self.keep_headers:
                data, _ = rfc822.strip_fields(data, BOOKKEEPING_HEADERS)
            out.append(SourceMessage(
                key=unique, data=data, flags=flags,
                internaldate=datetime.fromtimestamp(int(mtime), UTC),
                notes=tuple(notes + more),
            ))
        return out

    def close(self) -> None:
        pass
