"""Sans-IO LMTP codec: command lines in, typed commands out; replies out.

RFC 2033 §4 (LHLO and the LMTP command set), RFC 5321 §4.1 (command syntax,
reverse-path and forward-path, §4.1.2 address grammar, §4.5.2 dot
transparency, §4.5.3.1 size limits), RFC 1869 / RFC 5321 §4.1.1.11 (mail
parameters), RFC 1870 (SIZE=), RFC 6152 (BODY=7BIT|8BITMIME), RFC 6531 §3.4
(SMTPUTF8 parameter, UTF-8 addresses), RFC 3461 §4.2 (ORCPT=, accepted and
ignored), RFC 2034 / RFC 3463 (enhanced status codes in every reply),
RFC 3030 §2 (BDAT chunk-size [LAST], CHUNKING; BINARYMIME is not offered).

Like wire/, this module never touches sockets or the store: the session feeds
it bytes and gets back events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 5321 §4.5.3.1.4 says 512 octets; extensions (SIZE, BODY, SMTPUTF8,
# ORCPT with a long address) make more usual. Postfix accepts 2048.
MAX_COMMAND_LINE = 4096
# RFC 5321 §4.5.3.1.1/2: 64-octet local part, 255-octet domain; 256 for a path.
MAX_PATH = 512


class SyntaxProblem(Exception):
    """A command or parameter that does not parse; ``reply`` says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Reply:
    code: int                      # 250, 550, ...
    status: str                    # enhanced status code "2.1.5" (RFC 3463)
    text: str
    more: tuple[str, ...] = ()     # further lines of a multi-line reply

    def encode(self) -> bytes:
        if not self.more:         # nearly every reply: one line
            head = f"{self.code} {self.status} " if self.status else f"{self.code} "
            return (head + self.text + "\r\n").encode("utf-8", "replace")
        lines = [self.text, *self.more]
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            # LHLO keyword lines carry no enhanced code (RFC 2034 §3 only asks
            # for it on the first line of 2yz/4yz/5yz replies... we give it on
            # the first line and plain keywords after it, as Postfix does).
            body = f"{self.status} {line}" if i == 0 and self.status else line
            out.append(f"{self.code}{sep}{body}\r\n")
        return "".join(out).encode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return self.code < 400


def reply(code: int, status: str, text: str) -> Reply:
    return Reply(code, status, text)


# ------------------------------------------------------------------ commands


@dataclass(frozen=True, slots=True)
class Path:
    """A reverse-path or forward-path without its angle brackets; ``address``
    is "" for the null reverse-path ``<>``."""

    address: str
    local: str = ""
    domain: str = ""

    @property
    def is_ascii(self) -> bool:
        return self.address.isascii()


@dataclass(frozen=True, slots=True)
class Lhlo:
    domain: str


@dataclass(frozen=True, slots=True)
class Mail:
    path: Path
    size: int | None = None        # SIZE= (RFC 1870 §6)
    body: str = "7BIT"             # BODY= (RFC 6152 §2)
    smtputf8: bool = False         # RFC 6531 §3.4
    params: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rcpt:
    path: Path
    # X-FOLDER= (mailbag's own, for `mailbag deliver`): honoured only from a
    # Unix-socket peer running as the server's own user (lmtp/session.py).
    folder: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bdat:
    """BDAT (RFC 3030 §2): ``size`` octets follow the command line as they
    are (no dot-stuffing, no terminator); ``last`` ends the message."""

    size: int
    last: bool = False


@dataclass(frozen=True, slots=True)
class Simple:
    """DATA, RSET, NOOP, QUIT, HELP, VRFY, EXPN, HELO, EHLO, STARTTLS..."""

    verb: str
    arg: str = ""


Command = Lhlo | Mail | Rcpt | Bdat | Simple

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_DOMAIN_LABELS = re.compile(r"[^\s<>()\[\]\\,;:@\"]+\Z")
# C0 controls but HT (one regex scan: a per-character loop cost ~15 us a
# command, three commands a message).
_BAD_LOCAL = re.compile(r'[ <>()\[\],;:"\\]')
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f]")


def parse_command(line: bytes) -> Command:
    """One command line, without its CRLF."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise SyntaxProblem(reply(500, "5.5.2", "Command is not valid UTF-8")) from None
    if _CONTROLS.search(text) is not None:
        raise SyntaxProblem(reply(500, "5.5.2", "Control characters in the command"))
    verb, _, rest = text.partition(" ")
    verb = verb.upper()
    if verb == "LHLO":
        domain = rest.strip()
        if not domain:
            raise SyntaxProblem(reply(501, "5.5.4", "LHLO needs a domain"))
        return Lhlo(domain)
    if verb == "MAIL":
        path, params = _path_and_params(rest, "FROM:", allow_null=True)
        return _mail(path, params)
    if verb == "RCPT":
        path, params = _path_and_params(rest, "TO:", allow_null=False)
        return _rcpt(path, params)
    if verb == "BDAT":
        return _bdat(rest)
    return Simple(verb, rest.strip())


def _bdat(rest: str) -> Bdat:
    # bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ]; end-marker ::= "LAST"
    args = rest.split(" ")
    if not 1 <= len(args) <= 2 or not args[0].isdigit() or not args[0].isascii() \
            or len(args[0]) > 20:
        raise SyntaxProblem(reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"))
    if len(args) == 2 and args[1].upper() != "LAST":
        raise SyntaxProblem(reply(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"))
    return Bdat(int(args[0]), len(args) == 2)


def _path_and_params(rest: str, prefix: str, *, allow_null: bool) -> tuple[Path, list[str]]:
    if not rest[: len(prefix)].upper() == prefix:
        raise SyntaxProblem(reply(501, "5.5.4", f"Syntax: {prefix}<address> [parameters]"))
    rest = rest[len(prefix):].lstrip(" ")    # a space after the colon is common
    if not rest.startswith("<"):
        raise SyntaxProblem(reply(501, "5.1.7" if allow_null else "5.1.3",
                                  "The address must be in angle brackets"))
    end = _closing_bracket(rest)
    inner = rest[1:end]
    params = rest[end + 1:].split()
    if len(inner) > MAX_PATH:
        raise SyntaxProblem(reply(501, "5.1.7" if allow_null else "5.1.3", "Address too long"))
    if inner == "":
        if not allow_null:
            raise SyntaxProblem(reply(501, "5.1.3", "Empty recipient address"))
        return Path(""), params
    return parse_path(inner, "5.1.7" if allow_null else "5.1.3"), params


def _closing_bracket(text: str) -> int:
    # A quoted local part may hold ">" (RFC 5321 §4.1.2 Quoted-string).
    if '"' not in text:
        end = text.find(">")
        if end > 0:
            return end
        raise SyntaxProblem(reply(501, "5.5.4", "Missing closing angle bracket"))
    quoted = escaped = False
    for i, c in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
    raise SyntaxProblem(reply(501, "5.5.4", "Missing closing angle bracket"))


def parse_path(inner: str, status: str = "5.1.3") -> Path:
    """``[@route,@route:]local@domain`` (RFC 5321 §4.1.2; the source route
    is obsolete and ignored, §C)."""
    if inner.startswith("@"):
        colon = inner.find(":")
        if colon < 0:
            raise SyntaxProblem(reply(501, status, "Bad source route"))
        inner = inner[colon + 1:]
    at = inner.rfind("@")
    if at < 0 and status == "5.1.3":
        # A bare local part (<alice>, <Postmaster> of RFC 5321 §4.1.1.3): the
        # account of that name, as Dovecot's LMTP allows; `mailbag deliver`.
        at, inner = len(inner), inner + "@"
    elif at <= 0 or at == len(inner) - 1:
        raise SyntaxProblem(reply(501, status, f"Not an address: <{inner}>"))
    local, domain = inner[:at], inner[at + 1:]
    if not domain:
        if _BAD_LOCAL.search(local) or not local:
            raise SyntaxProblem(reply(501, status, f"Bad local part in <{local}>"))
        return Path(local, local, "")
    if local.startswith('"'):
        if not (len(local) >= 2 and local.endswith('"')):
            raise SyntaxProblem(reply(501, status, "Bad quoted local part"))
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    elif _BAD_LOCAL.search(local):
        raise SyntaxProblem(reply(501, status, f"Bad local part in <{inner}>"))
    if not (domain.startswith("[") and domain.endswith("]")) and not _DOMAIN_LABELS.match(domain):
        raise SyntaxProblem(reply(501, status, f"Bad domain in <{inner}>"))
    return Path(f"{local}@{domain}", local, domain)


def _split_params(params: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in params:
        key, eq, value = p.partition("=")
        if not _KEYWORD.match(key):
            raise SyntaxProblem(reply(501, "5.5.4", f"Bad parameter {p!r}"))
        out[key.upper()] = value if eq else None
    return out


def _mail(path: Path, raw: list[str]) -> Mail:
    params = _split_params(raw)
    size: int | None = None
    body = "7BIT"
    smtputf8 = False
    for key, value in params.items():
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise SyntaxProblem(reply(501, "5.5.4", "SIZE needs a number"))
            size = int(value)
        elif key == "BODY":
            body = (value or "").upper()
            if body not in ("7BIT", "8BITMIME"):
                # BINARYMIME needs CHUNKING (RFC 3030), which we do not offer.
                raise SyntaxProblem(reply(555, "5.5.4", f"Unsupported BODY type {value}"))
        elif key == "SMTPUTF8":
            if value is not None:
                raise SyntaxProblem(reply(501, "5.5.4", "SMTPUTF8 takes no value"))
            smtputf8 = True
        elif key in ("RET", "ENVID", "AUTH"):
            pass   # DSN (RFC 3461) and AUTH (RFC 4954) hints: nothing to do for a final delivery
        else:
            raise SyntaxProblem(reply(555, "5.5.4", f"Unsupported parameter {key}"))
    if not path.is_ascii and not smtputf8:
        raise SyntaxProblem(reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"))
    return Mail(path, size, body, smtputf8, params)


def _rcpt(path: Path, raw: list[str]) -> Rcpt:
    params = _split_params(raw)
    folder: str | None = None
    for key, value in params.items():
        if key == "X-FOLDER":
            if not value:
                raise SyntaxProblem(reply(501, "5.5.4", "X-FOLDER needs a folder name"))
            folder = xtext_decode(value)
        elif key not in ("ORCPT", "NOTIFY"):
            raise SyntaxProblem(reply(555, "5.5.4", f"Unsupported parameter {key}"))
    return Rcpt(path, folder, params)


def xtext_encode(text: str) -> str:
    """RFC 3461 §4 xtext (over UTF-8 bytes)."""
    out = []
    for b in text.encode("utf-8"):
        if 33 <= b <= 126 and b not in (0x2B, 0x3D):
            out.append(chr(b))
        else:
            out.append(f"+{b:02X}")
    return "".join(out)


def xtext_decode(text: str) -> str:
    try:
        raw = re.sub(rb"\+([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                     text.encode("utf-8"))
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SyntaxProblem(reply(501, "5.5.4", "Bad xtext")) from None


# ------------------------------------------------------------------- framing


@dataclass(slots=True)
class TooLong:
    limit: int


class InputBuffer:
    """Bytes from the client: command lines, then (after DATA) the message."""

    def __init__(self, max_line: int = MAX_COMMAND_LINE) -> None:
        self.buf = bytearray()
        self.max_line = max_line
        self._skipping = False      # discarding the rest of a too-long line

    def feed(self, data: bytes) -> None:
        self.buf += data

    def has_line(self) -> bool:
        return b"\n" in self.buf

    def next_line(self) -> bytes | TooLong | None:
        """A command line without CRLF (a bare LF is tolerated), TooLong once
        for an over-long line (the rest of it is skipped), or None: need more."""
        nl = self.buf.find(b"\n")
        if nl < 0:
            if len(self.buf) > self.max_line:
                del self.buf[:]
                if not self._skipping:
                    self._skipping = True
                    return TooLong(self.max_line)
            return None
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 1]
        if self._skipping:
            self._skipping = False
            return self.next_line()
        if len(line) > self.max_line:
            return TooLong(self.max_line)
        return line[:-1] if line.endswith(b"\r") else line


class DataReader:
    """The message after DATA up to ``CRLF.CRLF`` (RFC 5321 §4.1.1.4), with
    dot-unstuffing (§4.5.2). Beyond ``limit`` octets the data is counted and
    dropped rather than kept, so an oversized message costs no memory and
    the client still gets its replies (RFC 1870 §6.3)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # The leading CRLF makes a terminator (or a stuffed dot) on the very
        # first line look like any other.
        self.data = bytearray(b"\r\n")
        self.scanned = 0
        self.dropped = 0             # octets beyond the limit that were dropped

    @property
    def oversized(self) -> bool:
        return self.dropped > 0

    def feed_from(self, inbuf: InputBuffer) -> bytes | None:
        """Take what ``inbuf`` holds; the unstuffed message once the end was
        seen (anything after it stays in ``inbuf``), else None."""
        self.data += inbuf.buf
        del inbuf.buf[:]
        end = self.data.find(b"\r\n.\r\n", max(0, self.scanned - 4))
        if end < 0:
            self.scanned = len(self.data)
            if len(self.data) > self.limit + 2 + 5:
                # Keep the tail that could start a terminator.
                keep = len(self.data) - 4
                self.dropped += keep - 2
                del self.data[2:keep]
                self.scanned = len(self.data)
            return None
        inbuf.buf[:0] = self.data[end + 5:]
        body = bytes(self.data[: end + 2])
        self.data = bytearray()
        if len(body) - 2 > self.limit:
            self.dropped += len(body) - 2 - self.limit
        if b"\r\n.." in body:
            body = body.replace(b"\r\n..", b"\r\n.")
        return body[2:]
