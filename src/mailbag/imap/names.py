"""Mailbox names between client and store (RFC 9051 §5.1, §5.1.2 INBOX,
§6.3.9 LIST wildcards; RFC 3501 §5.1.3 modified UTF-7; RFC 6855 UTF8=ACCEPT).

The store keeps names as UTF-8 with "/" as the hierarchy separator and "INBOX"
spelled in capitals. Clients that have not enabled UTF8=ACCEPT send and
receive modified UTF-7.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailbag.store.api import INBOX, SEPARATOR
from mailbag.wire.mutf7 import decode_mutf7, encode_mutf7

MAX_NAME_BYTES = 512
MAX_DEPTH = 32


class BadName(ValueError):
    """A mailbox name the server refuses, with a message for the client."""


def normalize_inbox(name: str) -> str:
    """INBOX is case-insensitive, also as the first level of a hierarchy."""
    head, sep, rest = name.partition(SEPARATOR)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def from_client(raw: str, utf8: bool) -> str:
    """Turn the name a client sent into the store's name, or raise BadName."""
    if not utf8:
        try:
            name = decode_mutf7(raw)
        except ValueError as exc:
            raise BadName("Mailbox name is not valid modified UTF-7") from exc
    else:
        name = raw
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadName("Mailbox name is not valid UTF-8") from exc
    if not name:
        raise BadName("Empty mailbox name")
    if len(encoded) > MAX_NAME_BYTES:
        raise BadName("Mailbox name too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadName("Mailbox name contains control characters")
    return normalize_inbox(name)


def validate_new(name: str) -> str:
    """Extra rules for names being created: no empty levels, no wildcards,
    no '.'/'..' levels (so no name can look like a path), bounded depth."""
    stripped = name[:-1] if name.endswith(SEPARATOR) else name
    levels = stripped.split(SEPARATOR)
    if len(levels) > MAX_DEPTH:
        raise BadName("Mailbox hierarchy too deep")
    for level in levels:
        if not level:
            raise BadName("Mailbox name has an empty level")
        if level in (".", ".."):
            raise BadName("Mailbox name level may not be '.' or '..'")
        if "*" in level or "%" in level:
            raise BadName("Mailbox name may not contain wildcards")
    return stripped


def to_client(name: str, utf8: bool) -> str:
    """The store's name as the client must see it (modified UTF-7 unless UTF8)."""
    if utf8:
        return name
    return encode_mutf7(name).decode("ascii")


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def list_matcher(reference: str, pattern: str) -> re.Pattern[str]:
    """The regex a stored name must fully match for LIST reference pattern.

    Reference and pattern are already in store form. An INBOX prefix matches
    case-insensitively, as the name is normalized on the way in.
    """
    full = pattern if pattern.startswith(SEPARATOR) else reference + pattern
    return _pattern_regex(normalize_inbox(full) if full[:5].upper() == "INBOX" else full)


def parents(name: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']."""
    levels = name.split(SEPARATOR)
    return [SEPARATOR.join(levels[:i]) for i in range(1, len(levels))]
