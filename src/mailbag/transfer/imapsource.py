"""A remote IMAP server as an import source (RFC 9051 / RFC 3501 client side).

Uses the standard library's imaplib: LIST "" "*" for every folder (names in
modified UTF-7, RFC 3501 §5.1.3, the remote hierarchy delimiter mapped to
mailbag's "/"), EXAMINE (read-only, so nothing is marked \\Seen), UID SEARCH
ALL, then ``UID FETCH (UID FLAGS INTERNALDATE BODY.PEEK[])`` in batches. The
journal key is ``UIDVALIDITY:UID``, so a re-run fetches only what is missing;
if the remote UIDVALIDITY changed, every message looks new (documented).

TLS: implicit (port 993), STARTTLS (RFC 2595), or none (loopback only, for
tests and local migrations); certificates are verified unless told otherwise.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from mailbag.transfer import flagmap
from mailbag.transfer.model import Candidate, Skipped, SourceFolder, SourceMessage
from mailbag.wire.mutf7 import decode_mutf7, encode_mutf7

TlsMode = Literal["implicit", "starttls", "none"]

_LIST_LINE = re.compile(rb'\((?P<attrs>[^)]*)\) (?P<delim>"(?:\\.|[^"\\])*"|NIL) ?(?P<name>.*)\Z')
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_UID = re.compile(rb"UID (\d+)")
_DATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


class ImapSourceError(Exception):
    """A failure talking to the remote server (shown as one CLI line)."""


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str
    port: int
    login: str
    password: str
    tls: TlsMode = "implicit"
    cafile: Path | None = None
    verify: bool = True
    timeout: float = 60.0


def parse_internaldate(text: bytes) -> datetime:
    """``"05-Mar-2026 10:00:00 +0000"`` (RFC 9051 date-time)."""
    m = re.fullmatch(rb" ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)",
                     text.strip())
    if m is None:
        raise ValueError(f"bad INTERNALDATE {text!r}")
    offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
    tz = timezone(-offset if m.group(7) == b"-" else offset)
    return datetime(int(m.group(3)), _MONTHS[m.group(2).decode().title()], int(m.group(1)),
                    int(m.group(4)), int(m.group(5)), int(m.group(6)), tzinfo=tz)


def _unquote(value: bytes) -> bytes:
    if value.startswith(b'"') and value.endswith(b'"') and len(value) >= 2:
        return re.sub(rb"\\(.)", rb"\1", value[1:-1])
    return value


def _quote(name: bytes) -> str:
    return '"' + name.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapSource:
    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.identity = f"imap://{settings.login}@{settings.host}:{settings.port}"
        self.conn = self._connect()
        self._selected: str | None = None
        self._uidvalidity = 0
        self._delims: dict[str, str] = {}

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.settings.cafile) if self.settings.cafile else None)
        if not self.settings.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            conn: imaplib.IMAP4
            if s.tls == "implicit":
                conn = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=self._context(), timeout=s.timeout)
            else:
                conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    conn.starttls(self._context())
            conn.login(s.login, s.password)
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as e:
            raise ImapSourceError(f"{s.host}:{s.port}: {e}") from None
        return conn

    def _check(self, result: tuple[str, Any], what: str) -> list[Any]:
        typ, data = result
        if typ != "OK":
            raise ImapSourceError(f"{what}: {typ} {data!r}")
        return list(data)

    def folders(self) -> list[SourceFolder]:
        data = self._check(self.conn.list('""', "*"), "LIST")
        found: list[SourceFolder] = []
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):  # the name came as a literal
                head, name_raw = item[0], item[1]
                m = _LIST_LINE.match(head.rsplit(b" ", 1)[0] + b" ")
                line_name = name_raw
            else:
                assert isinstance(item, bytes)
                m = _LIST_LINE.match(item)
                line_name = _unquote(m.group("name")) if m else b""
            if m is None:
                continue
            attrs = m.group("attrs").lower().split()
            if b"\\noselect" in attrs or b"\\nonexistent" in attrs:
                continue
            delim = _unquote(m.group("delim")).decode() if m.group("delim") != b"NIL" else ""
            try:
                decoded = decode_mutf7(line_name)
            except ValueError:
                decoded = line_name.decode("utf-8", "replace")
            parts = decoded.split(delim) if delim else [decoded]
            name = "/".join(p.replace("/", "_") for p in parts if p)
            if name.casefold() == "inbox":
                name = "INBOX"
            self._delims[decoded] = delim
            found.append(SourceFolder(key=decoded, name=name))
        found.sort(key=lambda f: (f.name != "INBOX", f.name))
        return found

    def _select(self, folder: SourceFolder) -> int:
        if self._selected != folder.key:
            self._check(self.conn.select(_quote(encode_mutf7(folder.key)), readonly=True),
                        f"EXAMINE {folder.key}")
            _typ, values = self.conn.response("UIDVALIDITY")
            value = values[0] if values and values[0] else b"0"
            self._uidvalidity = int(value)
            self._selected = folder.key
        return self._uidvalidity

    def candidates(self, folder: SourceFolder) -> Iterator[Candidate | Skipped]:
        uidvalidity = self._select(folder)
        data = self._check(self.conn.uid("SEARCH", "ALL"), f"UID SEARCH in {folder.key}")
        uids = sorted(int(u) for chunk in data if isinstance(chunk, bytes) for u in chunk.split())
        for uid in uids:
            yield Candidate(key=f"{uidvalidity}:{uid}", ref=str(uid))

    def load(self, folder: SourceFolder, batch: Sequence[Candidate]) -> list[SourceMessage | Skipped]:
        self._select(folder)
        wanted = {int(c.ref): c.key for c in batch}
        data = self._check(
            self.conn.uid("FETCH", ",".join(str(u) for u in sorted(wanted)),
                          "(UID FLAGS INTERNALDATE BODY.PEEK[])"),
            f"UID FETCH in {folder.key}",
        )
        got: dict[int, SourceMessage | Skipped] = {}
        i = 0
        while i < len(data):
            item = data[i]
            i += 1
            if not isinstance(item, tuple):
                continue
            meta = item[0]
            body = item[1]
            # Items after the literal arrive as the next plain element: " UID 7)" or ")".
            if i < len(data) and isinstance(data[i], bytes) and not data[i][:1].isdigit():
                tail = data[i]
                assert isinstance(tail, bytes)
                meta += tail
                i += 1
            m_uid = _UID.search(meta)
            if m_uid is None or int(m_uid.group(1)) not in wanted:
                continue
            uid = int(m_uid.group(1))
            key = wanted[uid]
            m_flags = _FLAGS.search(meta)
            m_date = _DATE.search(meta)
            raw_flags = m_flags.group(1).decode("utf-8", "replace").split() if m_flags else []
            flags, notes = flagmap.clean_flags(raw_flags)
            try:
                when = parse_internaldate(m_date.group(1)) if m_date else None
            except ValueError as e:
                notes.append(str(e))
                when = None
            got[uid] = SourceMessage(key=key, data=bytes(body), flags=flags, internaldate=when,
                                     notes=tuple(notes))
        out: list[SourceMessage | Skipped] = []
        for uid in sorted(wanted):
            out.append(got.get(uid) or Skipped(wanted[uid], f"UID {uid}: not returned by FETCH "
                                                            "(expunged meanwhile?)"))
        return out

    def close(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass

