"""IMAP URLs naming one message or part (RFC 5092 §3 "imapurl", "enc-mailbox",
"iuid", "isection", "ipartial"), as CATENATE uses them (RFC 4469 §3.1):
either absolute ("imap://user@host/...") or relative to the server ("/box...").

URLAUTH (RFC 4467) and URLs naming a search or a mailbox are not accepted;
mailbox names are percent-encoded UTF-8 (RFC 5092 §3.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from mailbag.wire.commands import Partial, Section
from mailbag.wire.fetch_grammar import parse_fetch_items
from mailbag.wire.lexer import ParseError, Reader

_PATH = re.compile(
    r"^/(?P<box>[^;/?#]*(?:/[^;/?#]+)*)(?:;uidvalidity=(?P<uidvalidity>[1-9]\d{0,9}))?"
    r"/;uid=(?P<uid>[1-9]\d{0,9})"
    r"(?:/;section=(?P<section>[^/;?#]+))?"
    r"(?:/;partial=(?P<start>\d{1,19})(?:\.(?P<length>[1-9]\d{0,18}))?)?$",
    re.IGNORECASE,
)
_SERVER = re.compile(r"^imap://(?:(?P<user>[^@/;]*)(?:;auth=[^@/]*)?@)?[^/@]+(?P<path>/.*)$",
                     re.IGNORECASE)


class BadUrl(ValueError):
    """Not an IMAP URL naming one message this server can resolve."""


@dataclass(frozen=True, slots=True)
class MessageUrl:
    user: str | None              # from an absolute URL, percent-decoded
    mailbox: str                  # percent-decoded UTF-8
    uidvalidity: int | None
    uid: int
    section: Section              # Section() for the whole message
    partial: Partial | None


def parse_message_url(url: str) -> MessageUrl:
    user: str | None = None
    path = url
    if url[:7].lower() == "imap://":
        m = _SERVER.match(url)
        if m is None:
            raise BadUrl(url)
        if m.group("user") is not None:
            user = _decode(m.group("user"))
        path = m.group("path")
    p = _PATH.match(path)
    if p is None or not p.group("box"):
        raise BadUrl(url)
    section = Section()
    if p.group("section"):
        section = _section(_decode(p.group("section")), url)
    partial: Partial | None = None
    if p.group("start") is not None:
        length = p.group("length")
        partial = Partial(int(p.group("start")), int(length) if length else None)
    uidvalidity = p.group("uidvalidity")
    return MessageUrl(user, _decode(p.group("box")), int(uidvalidity) if uidvalidity else None,
                      int(p.group("uid")), section, partial)


def _decode(text: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl(text) from None


def _section(text: str, url: str) -> Section:
    """The section as in FETCH BODY[section], parsed by the FETCH grammar."""
    reader = Reader([b"BODY[" + text.encode("utf-8", "surrogateescape") + b"]"], [])
    try:
        items, _macro = parse_fetch_items(reader)
    except ParseError:
        raise BadUrl(url) from None
    if not reader.at_end() or len(items) != 1 or items[0].section is None:
        raise BadUrl(url)
    return items[0].section
