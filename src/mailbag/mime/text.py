"""Decoded text of a message for SEARCH (RFC 9051 §6.4.4 HEADER, BODY, TEXT)
and for PREVIEW (RFC 8970 §2: a plain-text excerpt of at most 200 characters).

Text parts are decoded twice over, first their Content-Transfer-Encoding
(RFC 2045 §6) and then their charset (unknown charsets are read as UTF-8 with
replacement characters); text/html is reduced to its text with entities
unescaped. Header values are unfolded and RFC 2047-decoded. Encapsulated
messages (message/rfc822, message/global) count as body text, headers and all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser

from mailbag.mime.headers import (
    decode_charset,
    decode_words,
    display_value,
    split_fields,
    to_str,
)
from mailbag.mime.message import Address, ParsedMessage, Part, SearchText
from mailbag.mime.transfer import decode_lenient

PREVIEW_CHARS = 200
_SPACES = re.compile(r"\s+")
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
_BLOCK_TAGS = frozenset({"br", "p", "div", "tr", "td", "th", "li", "h1", "h2", "h3", "h4",
                         "h5", "h6", "table", "blockquote", "pre", "hr"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self.skip:
            self.skip -= 1
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML document; never raises."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but stay safe on pathological input
        return _SPACES.sub(" ", re.sub(r"<[^>]*>", " ", html))
    return "".join(parser.out)


def part_text(raw: bytes, part: Part) -> str:
    """The decoded text of a text/* leaf part (HTML reduced to text)."""
    data = decode_lenient(raw[part.body_start:part.body_end], part.encoding)
    charset = next((v for k, v in part.params if k == "charset"), None)
    text = decode_charset(data, charset) if charset else to_str(data)
    if part.subtype == "html":
        text = html_to_text(text)
    return text.replace("\x00", "")


def headers_text(raw: bytes, start: int, end: int) -> str:
    """Every field of a header section as "Name: value" lines, decoded.
    NULs (raw, or from an encoded word) are dropped as in part_text: the
    search index's tokenizer would end the text at the first one."""
    return "".join(f"{to_str(f.name)}: {display_value(f.value)}\n"
                   for f in split_fields(raw, start, end)).replace("\x00", "")


def _walk_text(raw: bytes, part: Part) -> Iterator[str]:
    if part.children:
        for child in part.children:
            yield from _walk_text(raw, child)
    elif part.message is not None:
        m = part.message
        yield headers_text(raw, m.header_start, m.body_start)
        yield from _walk_text(raw, m)
    elif part.type == "text":
        yield part_text(raw, part)


def search_text(raw: bytes, msg: ParsedMessage) -> SearchText:
    """Decoded header and body text for SEARCH; never raises."""
    root = msg.root
    try:
        headers = headers_text(raw, root.header_start, root.body_start)
    except Exception:  # pragma: no cover - defensive: search text must not lose a message
        headers = to_str(raw[:root.body_start])
    try:
        body = "\n".join(_walk_text(raw, root))
    except Exception:  # pragma: no cover
        body = to_str(raw[root.body_start:root.body_end])
    return SearchText(headers=headers, body=body)


def header_values(raw: bytes, msg: ParsedMessage, name: bytes) -> list[str]:
    """Decoded values of every top-level field named *name* (SEARCH HEADER)."""
    key = name.upper()
    root = msg.root
    return [display_value(f.value) for f in split_fields(raw, root.header_start, root.body_start)
            if f.key == key]


def _first_text_part(part: Part) -> Part | None:
    if part.children:
        for child in part.children:
            found = _first_text_part(child)
            if found is not None:
                return found
        return None
    if part.type == "text" and part.subtype in ("plain", "html"):
        return part
    return None


def preview_of(raw: bytes, root: Part) -> str:
    """Up to 200 characters of body text, whitespace collapsed."""
    part = _first_text_part(root)
    if part is None:
        return ""
    # Decoding a huge part to show 200 characters is waste: a bounded prefix suffices
    # (generous, since HTML markup and QP soft breaks shrink a lot).
    end = min(part.body_end, part.body_start + 64 * 1024)
    bounded = Part(part.header_start, part.body_start, end, part.type, part.subtype,
                   part.params, part.encoding, part.lines)
    text = _SPACES.sub(" ", part_text(raw, bounded)).strip()
    if len(text) > PREVIEW_CHARS:
        text = text[:PREVIEW_CHARS].rstrip()
    return text


def address_text(addresses: Sequence[Address]) -> str:
    """One header's addresses in 'Name <mailbox@host>' form, groups as
    'group: a@b, c@d;', the way Dovecot builds the string it searches, so a
    needle matches a display name, an address or a group name."""
    items: list[str] = []
    group: list[str] | None = None
    group_name = ""
    for a in addresses:
        if a.host is None and a.mailbox is not None:     # group start
            group, group_name = [], a.mailbox
        elif a.host is None and a.mailbox is None:       # group end
            items.append(f"{group_name}: {', '.join(group or ())};")
            group = None
        else:
            addr = f"{a.mailbox}@{a.host}" if a.mailbox else a.host or ""
            # Facts keep display names RFC 2047-encoded, as ENVELOPE sends them.
            text = f"{decode_words(a.name)} <{addr}>" if a.name else addr
            (items if group is None else group).append(text)
    if group is not None:                                # unterminated group
        items.append(f"{group_name}: {', '.join(group)}")
    return ", ".join(items)


# The header fields SEARCH answers from the text index (store column order).
INDEXED_FIELDS: tuple[bytes, ...] = (b"FROM", b"TO", b"CC", b"BCC", b"SUBJECT")


def field_texts(p: ParsedMessage) -> tuple[str, ...]:
    """Casefolded search text of each of INDEXED_FIELDS, computed at ingest so
    that SEARCH FROM/TO/CC/BCC/SUBJECT is one indexed store query."""
    texts = (address_text(p.from_), address_text(p.to), address_text(p.cc),
             address_text(p.bcc), p.subject)
    return tuple(t.casefold().replace("\x00", "") for t in texts)
