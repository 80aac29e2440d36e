"""mbox files: reading (mboxrd and mboxo) and writing (mboxrd).

Format (RFC 4155 and the mboxrd convention): each message starts with a
"From_" line ``From SENDER DATE`` and ends with an empty line; body lines that
would look like a From_ line are quoted with ">". mboxrd quotes every
``>*From `` line by one more ">" and unquoting removes one; mboxo only quotes
``From `` so its ``>From `` lines are ambiguous. Reading unquotes as mboxrd,
which is exact for mboxrd and right for every mboxo line that was quoted.

A line is a From_ line when it starts with ``From `` and carries an asctime
date (``Sat Jan  3 01:05:34 1996``, optionally with a numeric zone); that date
is the INTERNALDATE, taken as UTC unless a zone is given.

Flags come from the c-client/Dovecot headers Status, X-Status and
X-Keywords. Like Dovecot, which hides its mbox bookkeeping headers from IMAP
clients (Content-Length, Status, X-IMAP, X-IMAPbase, X-Keywords, X-Status,
X-UID), the importer removes them from the stored message unless told to keep
headers; the exporter writes Status/X-Status/X-Keywords back, so an export
re-imports to the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

from mailbag.transfer import flagmap, rfc822
from mailbag.transfer.model import Candidate, Skipped, SourceFolder, SourceMessage

BOOKKEEPING_HEADERS = (
    b"content-length", b"status", b"x-imap", b"x-imapbase", b"x-keywords", b"x-status", b"x-uid",
)
MBOX_SUFFIX = ".mbox"

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_ASCTIME = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? +(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) +"
    rb"(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?"
    rb"(?: +(?P<tz1>[+-]\d{4}|[A-Z]{3,5}))? +(?P<year>\d{4})(?: +(?P<tz2>[+-]\d{4}))?"
)
_QUOTED_FROM = re.compile(rb">+From ")


def parse_from_line(line: bytes) -> datetime | None:
    """The date of a From_ line, or None if ``line`` is not one."""
    if not line.startswith(b"From "):
        return None
    m = _ASCTIME.search(line, 5)
    if m is None or m.group("mon").decode() not in _MONTHS:
        return None
    zone = m.group("tz1") or m.group("tz2") or b""
    tz = UTC
    if zone[:1] in (b"+", b"-"):
        minutes = int(zone[1:3]) * 60 + int(zone[3:5])
        tz = timezone(timedelta(minutes=-minutes if zone[:1] == b"-" else minutes))
    try:
        return datetime(int(m.group("year")), _MONTHS[m.group("mon").decode()],
                        int(m.group("day")), int(m.group("h")), int(m.group("m")),
                        int(m.group("s") or 0), tzinfo=tz)
    except ValueError:
        return None


def from_line(sender: str, when: datetime) -> bytes:
    """A From_ line (asctime in UTC, as the reader assumes)."""
    stamp = when.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
    # asctime pads the day with a space, not a zero.
    stamp = stamp[:8] + (" " + stamp[9] if stamp[8] == "0" else stamp[8:10]) + stamp[10:]
    return f"From {sender} {stamp}\n".encode()


def quote(data: bytes) -> bytes:
    """mboxrd quoting: one more ">" before every ``>*From `` line."""
    return re.sub(rb"(?m)^(>*From )", rb">\1", data)


def unquote_line(line: bytes) -> bytes:
    return line[1:] if _QUOTED_FROM.match(line) else line


def _message_from_lines(lines: list[bytes]) -> bytes:
    # The empty line before the next From_ line (or the end of the file)
    # separates messages and is not part of the message.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return b"".join(unquote_line(line) for line in lines)


def read_messages(f: BinaryIO) -> Iterator[tuple[int, datetime | None, bytes] | Skipped]:
    """Yield (offset of the From_ line, its date, message bytes) for every
    message; text before the first From_ line is reported as skipped."""
    offset = 0
    start = -1
    when: datetime | None = None
    lines: list[bytes] = []
    garbage = 0
    for line in f:
        date = parse_from_line(line) if line.startswith(b"From ") else None
        if date is not None:
            if start >= 0:
                yield start, when, _message_from_lines(lines)
            start, when, lines = offset, date, []
        elif start >= 0:
            lines.append(line)
        elif line.strip():
            garbage += len(line)
        offset += len(line)
    if start >= 0:
        yield start, when, _message_from_lines(lines)
    if garbage:
        yield Skipped("@0", f"{garbage} bytes before the first From_ line (not an mbox?)")


def convert(data: bytes, keep_headers: bool) -> tuple[bytes, frozenset[str], list[str]]:
    """Stored bytes, flags and notes for one raw mbox message."""
    data = rfc822.to_crlf(data)
    stripped, removed = rfc822.strip_fields(data, BOOKKEEPING_HEADERS)
    raw_flags = flagmap.mbox_flags(
        removed.get(b"status", []), removed.get(b"x-status", []), removed.get(b"x-keywords", [])
    )
    flags, notes = flagmap.clean_flags(raw_flags)
    return (data if keep_headers else stripped), flags, notes


class MboxSource:
    """One mbox file, or a directory of them (``NAME.mbox`` files, and files
    without a suffix that start with a From_ line; Thunderbird's ``X.sbd``
    subdirectories name the children of ``X``)."""

    def __init__(self, path: Path, *, keep_headers: bool = False) -> None:
        self.path = path.resolve()
        self.identity = f"mbox:{self.path}"
        self.keep_headers = keep_headers

    def folders(self) -> list[SourceFolder]:
        if self.path.is_file():
            return [SourceFolder(key="", name="INBOX")]
        found: list[SourceFolder] = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                rel = full.relative_to(self.path)
                if not _looks_like_mbox(full):
                    continue
                parts = [p.removesuffix(".sbd") for p in rel.parts[:-1]]
                parts.append(fname.removesuffix(MBOX_SUFFIX))
                name = "/".join(parts)
                if name.casefold() == "inbox":
                    name = "INBOX"
                found.append(SourceFolder(key=str(rel), name=name))
        return found

    def candidates(self, folder: SourceFolder) -> Iterator[Candidate | Skipped]:
        path = self.path / folder.key if folder.key else self.path
        # The key is the content hash plus how many equal messages came before:
        # it survives a MUA rewriting the file (offsets move, contents do not).
        occurrences: dict[str, int] = {}
        with open(path, "rb") as f:
            for item in read_messages(f):
                if isinstance(item, Skipped):
                    yield item
                    continue
                offset, when, raw = item
                data, flags, notes = convert(raw, self.keep_headers)
                digest = hashlib.sha256(data).hexdigest()
                n = occurrences.get(digest, 0)
                occurrences[digest] = n + 1
                key = f"{digest}:{n}"
                if not data.strip():
                    yield Skipped(f"@{offset}", "empty message")
                    continue
                msg = SourceMessage(key=key, data=data, flags=flags, internaldate=when,
                                    notes=tuple(notes))
                yield Candidate(key=key, payload=msg)

    def load(self, folder: SourceFolder, batch: Sequence[Candidate]) -> list[SourceMessage | Skipped]:
        return [c.payload if c.payload is not None else Skipped(c.key, "lost") for c in batch]

    def close(self) -> None:
        pass


def _looks_like_mbox(path: Path) -> bool:
    if path.name.endswith(MBOX_SUFFIX):
        return True
    if "." in path.name:
        return False  # index files (.msf), dotfiles, other formats
    try:
        with open(path, "rb") as f:
            return parse_from_line(f.readline(4096)) is not None
    except OSError:
        return False


# -- writing

def envelope_sender(data: bytes) -> str:
    """The From_ line's sender: the Return-Path address, else MAILER-DAEMON."""
    value = rfc822.header_value(data, b"return-path")
    if value:
        addr = value.decode("ascii", "replace").strip().strip("<>").strip()
        if addr and " " not in addr:
            return addr
    return "MAILER-DAEMON"


def write_message(out: BinaryIO, data: bytes, flags: frozenset[str], when: datetime) -> None:
    """Append one message in mboxrd form, with its flags in the header."""
    body = rfc822.add_fields(data, flagmap.mbox_status_lines(flags))
    out.write(from_line(envelope_sender(data), when))
    out.write(quote(body))
    if not body.endswith(b"\n"):
        out.write(b"\n")
    out.write(b"\n")
