"""The facts parsed from a message once, at ingest (RFC 5322 header fields,
RFC 2045/2046 MIME structure, RFC 9051 §7.5.2 ENVELOPE/BODY/BODYSTRUCTURE).

``ParsedMessage`` is what the store keeps beside each blob so that FETCH,
SEARCH and SORT never re-parse. Offsets index the raw message bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """One RFC 5322 address as ENVELOPE renders it (RFC 9051 "address").
    A group start has mailbox=group name and host None; a group end has both None.
    ``adl`` is the obsolete source route ("@a,@b"), almost always None."""

    name: str | None
    mailbox: str | None
    host: str | None
    adl: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity. For the top level, ``header_start`` is 0.

    ``children`` holds the parts of a multipart; ``message`` the encapsulated
    message of a message/rfc822 (or message/global) part, whose own offsets are
    absolute positions in the same raw bytes.
    """

    header_start: int
    body_start: int               # first byte after the blank line (or end)
    body_end: int
    type: str                     # lower-case, e.g. "text"
    subtype: str                  # lower-case, e.g. "plain"
    params: tuple[tuple[str, str], ...]
    encoding: str                 # lower-case Content-Transfer-Encoding, "7bit" default
    lines: int                    # body lines (text/* and message/rfc822)
    children: tuple[Part, ...] = ()
    message: Part | None = None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    root: Part
    envelope: bytes               # IMAP-rendered ENVELOPE "(...)"
    body: bytes                   # IMAP-rendered non-extensible BODY "(...)"
    bodystructure: bytes          # IMAP-rendered BODYSTRUCTURE "(...)"
    sent_date: datetime | None    # the Date: header, timezone-aware, None if bad
    subject: str                  # RFC 2047-decoded
    base_subject: str             # RFC 5256 §2.1 base subject (SORT/THREAD)
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    preview: str                  # RFC 8970: up to 200 characters of text body

    def to_bytes(self) -> bytes:
        from mailbag.mime.facts import dump

        return dump(self)

    @staticmethod
    def from_bytes(data: bytes) -> ParsedMessage:
        from mailbag.mime.facts import load

        return load(data)


@dataclass(frozen=True, slots=True)
class SearchText:
    """Decoded text for SEARCH, kept by the store in its search index."""

    headers: str                  # all header fields, unfolded, RFC 2047-decoded
    body: str                     # text parts decoded (CTE + charset), HTML stripped
