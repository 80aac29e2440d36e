"""Address lists as ENVELOPE needs them (RFC 5322 §3.4 address, group,
name-addr, obs-route; RFC 9051 §7.5.2 "address" with group markers).

A tolerant tokenizer-based parser, modelled on Dovecot's message-address.c:
quoted strings are unquoted, a comment stands in for a missing display name,
a missing domain becomes "MISSING_DOMAIN" (host NIL would mean a group) and a
missing local part "MISSING_MAILBOX". Values stay as written (not RFC
2047-decoded): IMAP sends them encoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbag.mime.headers import unfold

MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"

_SPECIALS = b"()<>@,;:\\\".[]"
_WS = b" \t\r\n"
# Atom text: up to the next whitespace or special (one regex match instead of
# a Python step per byte; address parsing was ~10 % of ingest).
_ATOM_RUN = re.compile(rb'[^ \t\r\n()<>@,;:\\".\[\]]+')


@dataclass(frozen=True, slots=True)
class RawAddress:
    """One ENVELOPE address as bytes: group start has host None, group end all None."""

    name: bytes | None
    adl: bytes | None
    mailbox: bytes | None
    host: bytes | None


# token kinds
_ATOM, _QS, _COMMENT, _DLIT, _SPECIAL, _SPACE = range(6)


def _tokens(data: bytes) -> list[tuple[int, bytes]]:
    """Tokens; an atom or quoted string after whitespace is marked by a leading
    _SPACE token so that display names keep their word breaks."""
    out: list[tuple[int, bytes]] = []
    pos, n = 0, len(data)
    while pos < n:
        c = data[pos]
        if c in _WS:
            pos += 1
            if out and out[-1][0] != _SPACE:
                out.append((_SPACE, b" "))
        elif c == 0x22:  # quoted string
            close = data.find(b'"', pos + 1)
            if close >= 0 and data.find(b"\\", pos + 1, close) < 0:
                out.append((_QS, data[pos + 1:close]))   # nothing to unescape
                pos = close + 1
                continue
            buf = bytearray()
            pos += 1
            while pos < n and data[pos] != 0x22:
                if data[pos] == 0x5C and pos + 1 < n:
                    pos += 1
                buf.append(data[pos])
                pos += 1
            out.append((_QS, bytes(buf)))
            pos += 1
        elif c == 0x28:  # comment, nested
            depth, buf = 0, bytearray()
            while pos < n:
                c = data[pos]
                if c == 0x5C and pos + 1 < n:
                    buf.append(data[pos + 1])
                    pos += 2
                    continue
                if c == 0x28:
                    depth += 1
                    if depth > 1:
                        buf.append(c)
                elif c == 0x29:
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                    buf.append(c)
                else:
                    buf.append(c)
                pos += 1
            out.append((_COMMENT, bytes(buf).strip()))
        elif c == 0x5B:  # domain literal
            end = data.find(b"]", pos)
            end = n if end < 0 else end + 1
            out.append((_DLIT, data[pos:end]))
            pos = end
        elif c in _SPECIALS:
            out.append((_SPECIAL, bytes((c,))))
            pos += 1
        else:
            end = _ATOM_RUN.match(data, pos).end()  # type: ignore[union-attr]  # c is atom text
            out.append((_ATOM, data[pos:end]))
            pos = end
    return out


def _phrase(words: list[tuple[int, bytes]]) -> bytes | None:
    """Display-name words, with single spaces where the source had whitespace."""
    out = bytearray()
    space = False
    for kind, text in words:
        if kind == _SPACE:
            space = True
            continue
        if kind in (_ATOM, _QS, _DLIT) or (kind == _SPECIAL and text == b"."):
            if out and space:
                out += b" "
            out += text
        space = False
    return bytes(out) if out else None


def _real(words: list[tuple[int, bytes]]) -> bool:
    return any(k != _SPACE for k, _t in words)


def _joined(words: list[tuple[int, bytes]]) -> bytes:
    """A local part or domain: its atoms and dots concatenated."""
    return b"".join(t for k, t in words if k in (_ATOM, _QS, _DLIT) or (k == _SPECIAL and t == b"."))


def parse_address_list(raw_value: bytes | None) -> list[RawAddress]:
    """Parse an address-list header value; never raises."""
    if raw_value is None:
        return []
    toks = _tokens(unfold(raw_value))
    out: list[RawAddress] = []
    in_group = False
    i, n = 0, len(toks)
    while i < n:
        words: list[tuple[int, bytes]] = []
        comment: bytes | None = None
        while i < n:
            kind, text = toks[i]
            if kind == _SPECIAL and text in (b"<", b":", b",", b";", b"@"):
                break
            if kind == _COMMENT:
                comment = comment if comment is not None else text
            elif not (kind == _SPECIAL and text != b"."):
                words.append((kind, text))
            i += 1
        if i >= n:
            if _real(words):
                out.append(_addr(None, None, _joined(words), None, comment))
            break
        text = toks[i][1]
        i += 1
        if text == b":":
            if in_group:  # a second ":" inside a group: part of nothing useful
                continue
            out.append(RawAddress(None, None, _phrase(words) or b"", None))
            in_group = True
        elif text == b";":
            if _real(words):
                out.append(_addr(None, None, _joined(words), None, comment))
            if in_group:
                out.append(RawAddress(None, None, None, None))
                in_group = False
        elif text == b",":
            if _real(words):
                out.append(_addr(None, None, _joined(words), None, comment))
        elif text == b"<":
            i = _angle(toks, i, _phrase(words), comment, out)
        else:  # "@": addr-spec, words were the local part
            local = _joined(words)
            dom: list[tuple[int, bytes]] = []
            while i < n:
                kind, t = toks[i]
                if kind == _SPECIAL and t in (b",", b";", b"<", b">", b":"):
                    break
                if kind == _COMMENT:
                    comment = comment if comment is not None else t
                elif kind != _SPECIAL or t == b".":
                    dom.append((kind, t))
                i += 1
            out.append(_addr(comment, None, local, _joined(dom), None))
    if in_group:
        out.append(RawAddress(None, None, None, None))
    return out


def _angle(
    toks: list[tuple[int, bytes]], i: int, name: bytes | None, comment: bytes | None,
    out: list[RawAddress],
) -> int:
    """Parse ``[route ":"] local "@" domain ">"`` starting after "<"."""
    n = len(toks)
    inner: list[tuple[int, bytes]] = []
    while i < n:
        kind, t = toks[i]
        i += 1
        if kind == _SPECIAL and t == b">":
            break
        if kind == _COMMENT:
            comment = comment if comment is not None else t
            continue
        if kind != _SPACE:
            inner.append((kind, t))
    adl: bytes | None = None
    colon = next((k for k, tok in enumerate(inner) if tok == (_SPECIAL, b":")), -1)
    if colon >= 0 and inner and inner[0] == (_SPECIAL, b"@"):
        route = inner[:colon]
        adl = b"".join(t for _k, t in route) or None
        inner = inner[colon + 1:]
    at = -1
    for k in range(len(inner) - 1, -1, -1):
        if inner[k] == (_SPECIAL, b"@"):
            at = k
            break
    if at >= 0:
        local, host = _joined(inner[:at]), _joined(inner[at + 1:])
    else:
        local, host = _joined(inner), b""
    out.append(_addr(name if name is not None else comment, adl, local, host, None))
    return i


def _addr(
    name: bytes | None, adl: bytes | None, mailbox: bytes, host: bytes | None,
    comment: bytes | None,
) -> RawAddress:
    if name is None and comment:
        name = comment
    return RawAddress(name, adl, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN)
