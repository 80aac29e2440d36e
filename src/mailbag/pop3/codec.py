"""Sans-IO POP3 codec: line framing, command parsing, responses and the
message transformations RETR and TOP send.

- RFC 1939 §3: commands are a keyword and arguments on one CRLF-terminated
  line; responses start with "+OK" or "-ERR"; multi-line responses end with
  "." CRLF and lines beginning with "." are byte-stuffed.
- RFC 1939 §11 and §5 (LIST): message sizes count CRLF line ends. A message
  stored with bare LF line ends is sent with CRLF (see ``to_wire``), and the
  size reported by STAT and LIST is exactly ``len(to_wire(raw))``: what the
  client holds after undoing the byte-stuffing and dropping the final ".".
- RFC 2449 §4: commands are limited in length (255 octets there; see
  ``MAX_LINE`` for why we allow more); RFC 2449 §8 and RFC 3206: response
  codes in brackets after "-ERR".

Like wire/, this module never touches asyncio, sockets or the store, so it can
be fed byte by byte in tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

# RFC 2449 §4 caps a command line at 255 octets, but real passwords (and app
# passwords) can be long and AUTH PLAIN initial responses are base64 of user +
# password; 4 KiB accepts every honest client and still bounds what a
# stranger can make us buffer.
MAX_LINE: Final = 4096

_KEYWORD = re.compile(rb"[A-Za-z]{1,20}\Z")
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True, slots=True)
class Line:
    """One complete client line, without its CRLF (or bare LF)."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line longer than the limit arrived; it was discarded whole."""

    limit: int


LineEvent = Line | TooLong


class LineReader:
    """Split a byte stream into lines, never buffering more than ``max_line``.

    A line that grows past the limit is dropped as it arrives (only its end
    is looked for), and reported once as ``TooLong`` when its LF is seen, so
    that the rest of it is never mistaken for a command.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def discard_buffer(self) -> None:
        """Forget buffered input (after STLS: it arrived in clear text)."""
        self._buf.clear()
        self._discarding = False

    @property
    def buffered(self) -> bool:
        return bool(self._buf)

    def next_event(self) -> LineEvent | None:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > self.max_line:
                self._buf.clear()
                self._discarding = True
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        if self._discarding or end > self.max_line:
            self._discarding = False
            return TooLong(self.max_line)
        return Line(line.removesuffix(b"\r"))


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command line: the upper-cased keyword and the raw rest.

    ``arg`` is everything after the first space, unsplit: PASS takes it whole
    (RFC 1939 §7 lets a server treat spaces as part of the password).
    """

    name: str
    arg: bytes = field(default=b"", repr=False)

    def args(self) -> list[str]:
        """The arguments split on spaces (ASCII; other bytes are replaced)."""
        return self.arg.decode("ascii", "replace").split()


class BadCommand(ValueError):
    """A line that is not a POP3 command at all."""


def parse_command(line: bytes) -> Command:
    keyword, _, rest = line.partition(b" ")
    if not _KEYWORD.match(keyword):
        raise BadCommand("Invalid command syntax")
    return Command(keyword.decode("ascii").upper(), rest)


# ---------------------------------------------------------------- responses

def ok(text: str = "") -> bytes:
    return f"+OK {text}\r\n".encode() if text else b"+OK\r\n"


def err(text: str, code: str | None = None) -> bytes:
    """``-ERR [CODE] text`` (RFC 2449 §8); text is reduced to one safe line."""
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    prefix = f"[{code}] " if code else ""
    return f"-ERR {prefix}{text}\r\n".encode()


def multiline(first: bytes, lines: list[str]) -> bytes:
    """A +OK line followed by ``lines`` (already safe ASCII) and ".": for
    CAPA, LIST and UIDL, whose lines never start with "."."""
    return first + "".join(f"{x}\r\n" for x in lines).encode() + b".\r\n"


# ----------------------------------------------------------------- messages

def to_wire(raw: bytes) -> bytes:
    """The message as POP3 delivers it: bare LF becomes CRLF and the last
    line is terminated, so the multi-line terminator starts a line of its own.
    A lone CR is not a line end and is kept. ``len(to_wire(raw))`` is the
    size STAT and LIST report."""
    data = _BARE_LF.sub(b"\r\n", raw)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def wire_size(raw: bytes) -> int:
    return len(to_wire(raw))


def top(data: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line and the first ``lines``
    lines of the body, from ``data`` already in ``to_wire`` form."""
    if data.startswith(b"\r\n"):
        head_end = 2                         # no header at all
    else:
        blank = data.find(b"\r\n\r\n")
        if blank < 0:
            return data                      # all header, no body
        head_end = blank + 4
    pos = head_end
    for _ in range(lines):
        nxt = data.find(b"\r\n", pos)
        if nxt < 0:
            return data
        pos = nxt + 2
    return data[:pos]


def dot_stuff(data: bytes) -> bytes:
    """RFC 1939 §3 byte-stuffing plus the terminating ".", for ``data`` in
    ``to_wire`` form (empty or ending in CRLF)."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def uidl(uidvalidity: int, uid: int) -> str:
    """A unique-id (RFC 1939 §7 UIDL) that never changes for a message and is
    never reused: the store's UID, qualified by the UIDVALIDITY of INBOX (if
    INBOX is ever recreated, UIDs restart and so must unique-ids). The format
    is Dovecot's default ``%08Xu%08Xv``."""
    return f"{uid:08X}{uidvalidity:08X}"
