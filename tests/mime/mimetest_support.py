"""Test helpers for mime/: an mbox reader with imaptest's semantics, a reader
for the {{{ }}} literal blocks of imaptest scripts, and a small strict parser
for IMAP values (used to check that ENVELOPE/BODYSTRUCTURE are valid syntax)."""

from __future__ import annotations

import re
from pathlib import Path

CONFORMANCE = Path("/work/shared/conformance/scripts")
DATA = Path(__file__).resolve().parent.parent / "data" / "messages"


def read_mbox(path: Path) -> list[bytes]:
    """Messages of an mbox as imaptest appends them: CRLF line ends, the blank
    line before the next "From " line kept."""
    lines = path.read_bytes().split(b"\n")[:-1]
    msgs: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"From ") and (not msgs or msgs[-1]):
            msgs.append([])
            continue
        msgs[-1].append(line)
    return [b"".join((ln[:-1] if ln.endswith(b"\r") else ln) + b"\r\n" for ln in m) for m in msgs]


def read_script(path: Path) -> list[bytes]:
    """Script lines with {{{ blocks turned into {N}/~{N} literals (imapscript.py)."""
    out: list[bytes] = []
    ml: bytearray | None = None
    binary = False
    start_pos = last_end = 0
    for line in path.read_bytes().split(b"\n")[:-1]:
        if ml is not None:
            if not line.startswith(b"}}}"):
                ml += line
                last_end = len(ml)
                ml += b"\n" if binary else b"\r\n"
                continue
            del ml[last_end:]
            ml[start_pos:start_pos] = b"%s{%d}\r\n" % (b"~" if binary else b"",
                                                      len(ml) - start_pos)
            line = line[3:]
            if not line.endswith(b"{{{"):
                out.append(bytes(ml + line))
                ml = None
                continue
        elif line.endswith(b"{{{"):
            ml = bytearray()
        if ml is not None:
            binary = line[:-3].endswith(b"~")
            ml += line[:-4] if binary else line[:-3]
            start_pos = last_end = len(ml)
            continue
        out.append(line)
    return out


class SyntaxErr(Exception):
    pass


Value = bytes | None | list["Value"] | tuple[str, bytes]


def parse_value(data: bytes, pos: int = 0) -> tuple[Value, int]:
    """One IMAP value at *pos*: list, NIL (None), number/atom (("atom", b)),
    string or literal (bytes). Strict about quoting: raises SyntaxErr."""
    if pos >= len(data):
        raise SyntaxErr("unexpected end")
    c = data[pos:pos + 1]
    if c == b"(":
        items: list[Value] = []
        pos += 1
        while True:
            if pos >= len(data):
                raise SyntaxErr("unclosed list")
            if data[pos:pos + 1] == b")":
                return items, pos + 1
            if items:
                if data[pos:pos + 1] != b" " and not (data[pos:pos + 1] == b"("
                                                      and data[pos - 1:pos] == b")"):
                    raise SyntaxErr(f"expected space at {pos}: {data[pos:pos + 20]!r}")
                if data[pos:pos + 1] == b" ":
                    pos += 1
            item, pos = parse_value(data, pos)
            items.append(item)
    if c == b'"':
        out = bytearray()
        pos += 1
        while True:
            if pos >= len(data):
                raise SyntaxErr("unterminated quoted string")
            ch = data[pos]
            if ch == 0x5C:
                if pos + 1 >= len(data) or data[pos + 1] not in b'"\\':
                    raise SyntaxErr("bad escape")
                out.append(data[pos + 1])
                pos += 2
                continue
            if ch == 0x22:
                return bytes(out), pos + 1
            if ch in (0x0D, 0x0A, 0x00) or ch >= 0x80:
                raise SyntaxErr("bad char in quoted string")
            out.append(ch)
            pos += 1
    m = re.compile(rb"~?\{(\d+)\}\r\n").match(data, pos)
    if m:
        n = int(m.group(1))
        end = m.end() + n
        if end > len(data):
            raise SyntaxErr("short literal")
        lit = data[m.end():end]
        if b"\x00" in lit and not data[pos:pos + 1] == b"~":
            raise SyntaxErr("NUL in literal")
        return lit, end
    m = re.compile(rb"\\?[^\x00-\x20\x7f-\xff(){%*\"\\]+").match(data, pos)
    if not m:
        raise SyntaxErr(f"bad value at {pos}: {data[pos:pos + 20]!r}")
    word = m.group(0)
    if word.upper() == b"NIL":
        return None, m.end()
    return ("atom", word), m.end()


def parse_all(data: bytes) -> Value:
    value, pos = parse_value(data)
    if pos != len(data):
        raise SyntaxErr(f"trailing data at {pos}: {data[pos:pos + 20]!r}")
    return value


def lower(value: Value) -> Value:
    """Case-folded copy, for imaptest's case-insensitive comparisons."""
    if isinstance(value, list):
        return [lower(v) for v in value]
    if isinstance(value, tuple):
        return (value[0], value[1].lower())
    if isinstance(value, bytes):
        return value.lower()
    return value


def check_body(value: Value, extended: bool) -> None:
    """Structural check of a BODY/BODYSTRUCTURE value against RFC 9051 §9."""
    if not isinstance(value, list) or not value:
        raise SyntaxErr("body is not a non-empty list")
    if isinstance(value[0], list):  # multipart
        i = 0
        while i < len(value) and isinstance(value[i], list):
            check_body(value[i], extended)
            i += 1
        if i >= len(value) or not isinstance(value[i], bytes):
            raise SyntaxErr("multipart without subtype string")
        rest = value[i + 1:]
        if extended and len(rest) < 4:
            raise SyntaxErr("multipart missing extension data")
        if not extended and rest:
            raise SyntaxErr("BODY multipart with extension data")
        return
    if len(value) < 7:
        raise SyntaxErr("basic body too short")
    typ, sub = value[0], value[1]
    if not isinstance(typ, bytes) or not isinstance(sub, bytes):
        raise SyntaxErr("type/subtype must be strings")
    if value[2] is not None and not isinstance(value[2], list):
        raise SyntaxErr("params must be list or NIL")
    if not isinstance(value[6], tuple) or not value[6][1].isdigit():
        raise SyntaxErr("size must be a number")
    n = 7
    if typ.lower() == b"text":
        if not isinstance(value[7], tuple):
            raise SyntaxErr("text lines missing")
        n = 8
    elif typ.lower() == b"message" and sub.lower() in (b"rfc822", b"global"):
        if len(value[7]) != 10:  # type: ignore[arg-type]
            raise SyntaxErr("bad envelope")
        check_body(value[8], extended)
        n = 10
    rest = value[n:]
    if extended and len(rest) != 4:
        raise SyntaxErr(f"single part extension data has {len(rest)} items")
    if not extended and rest:
        raise SyntaxErr("BODY with extension data")
