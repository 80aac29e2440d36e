"""Structured MIME header values: Content-Type and Content-Disposition with
their parameters (RFC 2045 §5.1, RFC 2183 §2), RFC 2231 parameter
continuations and charset/language encoding, Content-Language (RFC 3282).

Two views of the parameters are produced: ``wire`` is what BODYSTRUCTURE sends
(continuations joined, an RFC 2231 extended value left encoded under the name
``key*`` as Dovecot does, so clients decode it themselves) and ``decoded`` is
what mailbag itself uses (names lower-case, values decoded to text).
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass

from mailbag.mime.headers import decode_charset, decode_words, to_str, unfold

# RFC 2045 token: any CHAR except SPACE, CTLs and tspecials.
_TOKEN = re.compile(rb"[^\x00-\x20\x7f()<>@,;:\\\"/\[\]?=]+")
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$")


@dataclass(frozen=True, slots=True)
class StructuredValue:
    """``value; a=b; c=d``: the leading value and the parameters."""

    value: bytes                              # "text/plain", "attachment", as written
    wire: tuple[tuple[bytes, bytes], ...]     # for BODYSTRUCTURE
    decoded: tuple[tuple[str, str], ...]      # for mailbag


def _skip_cfws(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        c = data[pos]
        if c in b" \t\r\n":
            pos += 1
        elif c == 0x28:  # "(" comment, nested
            depth = 0
            while pos < n:
                c = data[pos]
                if c == 0x5C:
                    pos += 2
                    continue
                if c == 0x28:
                    depth += 1
                elif c == 0x29:
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
        else:
            break
    return min(pos, n)


def _quoted(data: bytes, pos: int) -> tuple[bytes, int]:
    """The content of the quoted-string whose opening quote is at *pos*."""
    out = bytearray()
    pos += 1
    n = len(data)
    while pos < n:
        c = data[pos]
        if c == 0x5C and pos + 1 < n:
            out.append(data[pos + 1])
            pos += 2
            continue
        if c == 0x22:
            return bytes(out), pos + 1
        out.append(c)
        pos += 1
    return bytes(out), pos


def parse_structured(raw_value: bytes) -> StructuredValue:
    """Parse ``value *(";" attribute "=" value)`` tolerantly."""
    data = unfold(raw_value)
    pos = _skip_cfws(data, 0)
    semi = data.find(b";", pos)
    head_end = len(data) if semi < 0 else semi
    # Comments inside the leading value ("text/plain (comment)") are dropped.
    head = re.sub(rb"\([^)]*\)", b"", data[pos:head_end]).strip()
    head = re.sub(rb"\s+", b"", head)
    raw_params: list[tuple[bytes, bytes]] = []
    pos = head_end
    n = len(data)
    while pos < n:
        pos += 1  # the ";"
        pos = _skip_cfws(data, pos)
        m = _TOKEN.match(data, pos)
        if not m:
            nxt = data.find(b";", pos)
            if nxt < 0:
                break
            pos = nxt
            continue
        name = m.group(0)
        pos = _skip_cfws(data, m.end())
        if pos >= n or data[pos] != 0x3D:  # no "=": junk up to the next ";"
            nxt = data.find(b";", pos)
            if nxt < 0:
                break
            pos = nxt
            continue
        pos = _skip_cfws(data, pos + 1)
        if pos < n and data[pos] == 0x22:
            value, pos = _quoted(data, pos)
        else:
            # Tolerate unquoted values with tspecials (common): up to ";".
            nxt = data.find(b";", pos)
            stop = n if nxt < 0 else nxt
            value = data[pos:stop].strip()
            tok = _TOKEN.match(value)
            rest = value[tok.end():].strip() if tok else b""
            if tok and rest.startswith(b"(") and rest.endswith(b")"):
                value = tok.group(0)  # a token followed by a comment
            pos = stop
        raw_params.append((name, value))
        pos = _skip_cfws(data, pos)
        if pos < n and data[pos] != 0x3B:
            nxt = data.find(b";", pos)
            if nxt < 0:
                break
            pos = nxt
    wire, decoded = _rfc2231(raw_params)
    return StructuredValue(head, wire, decoded)


def _rfc2231(
    params: list[tuple[bytes, bytes]],
) -> tuple[tuple[tuple[bytes, bytes], ...], tuple[tuple[str, str], ...]]:
    """Join ``name*0``/``name*1*`` continuations; decode ``name*`` values."""
    # Entries keep the order of first appearance; a continuation's slot holds
    # its base name until all its sections are known.
    plain: list[tuple[str, bytes, bool] | str] = []
    sections: dict[str, dict[int, tuple[bytes, bool]]] = {}
    for rname, value in params:
        name = to_str(rname).lower()
        m = _SECTION.match(name)
        if m:
            base = m.group(1)
            if base not in sections:
                sections[base] = {}
                plain.append(base)
            sections[base].setdefault(int(m.group(2)), (value, bool(m.group(3))))
            continue
        extended = name.endswith("*")
        plain.append((name.rstrip("*") if extended else name, value, extended))
    entries: list[tuple[str, bytes, bool]] = []
    for entry in plain:
        if not isinstance(entry, str):
            entries.append(entry)
            continue
        parts = sections[entry]
        # Continuations stop at the first missing number (RFC 2231 §3).
        first = 0 if 0 in parts else min(parts)
        extended = parts[first][1]
        joined = bytearray()
        i = first
        while i in parts:
            joined += parts[i][0]
            i += 1
        entries.append((entry, bytes(joined), extended))
    wire: list[tuple[bytes, bytes]] = []
    decoded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value, extended in entries:
        wire.append(((name + "*" if extended else name).encode("utf-8"), value))
        if name in seen:
            continue
        seen.add(name)
        decoded.append((name, _decode_extended(value) if extended else decode_words(to_str(value))))
    return tuple(wire), tuple(decoded)


def _decode_extended(value: bytes) -> str:
    """``charset'language'percent-encoded`` to text."""
    text = value.decode("latin-1")
    charset = "us-ascii"
    if text.count("'") >= 2:
        charset, _lang, text = text.split("'", 2)
    data = urllib.parse.unquote_to_bytes(text)
    return decode_charset(data, charset or "us-ascii")


def parse_content_type(raw_value: bytes | None) -> tuple[str, str, StructuredValue] | None:
    """``(type, subtype, structured)`` lower-cased, or None when absent or invalid."""
    if raw_value is None:
        return None
    # Leaf types repeat from message to message ("text/plain; charset=utf-8")
    # and the answer is immutable: parsed once per distinct value. A value
    # with a boundary is unique to its message, so it is not kept.
    if len(raw_value) <= 200 and b"oundary" not in raw_value and b"OUNDARY" not in raw_value:
        return _content_type_cached(raw_value)
    return _content_type(raw_value)


def _content_type(raw_value: bytes) -> tuple[str, str, StructuredValue] | None:
    sv = parse_structured(raw_value)
    slash = sv.value.find(b"/")
    if slash <= 0:
        return None
    t, s = sv.value[:slash], sv.value[slash + 1:]
    # 8-bit bytes pass _TOKEN (parameter names tolerate them) but a type
    # with them is invalid: the RFC 2045 §5.2 default applies (found by
    # tests/fuzz: "Content-Type:\xa0multipart/mixed" raised here).
    if not _TOKEN.fullmatch(t) or not _TOKEN.fullmatch(s) or not (t + s).isascii():
        return None
    return t.decode("ascii").lower(), s.decode("ascii").lower(), sv


_content_type_cached = functools.lru_cache(maxsize=512)(_content_type)


def parse_language(raw_value: bytes) -> tuple[bytes, ...]:
    """Content-Language tags (RFC 3282: comma-separated, comments allowed)."""
    data = re.sub(rb"\([^)]*\)", b" ", unfold(raw_value))
    return tuple(t for t in re.split(rb"[\s,]+", data) if t)


def parse_encoding(raw_value: bytes | None) -> str:
    """Content-Transfer-Encoding, lower-case; "7bit" when absent or empty."""
    if raw_value is None:
        return "7bit"
    data = re.sub(rb"\([^)]*\)", b"", unfold(raw_value)).strip().strip(b'"')
    if not data:
        return "7bit"
    return to_str(data).lower()
