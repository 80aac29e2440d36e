"""Flag algebra shared by every backend (RFC 9051 §2.3.2 flags message attribute).

Flags are kept as the client spelled them but compared case-insensitively;
system flags get their canonical capitalization and ``\\Recent`` is never
stored, because it is a per-session property (RFC 3501 §2.3.2), not data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
RECENT = "\\Recent"

SYSTEM_FLAGS: tuple[str, ...] = (ANSWERED, FLAGGED, DELETED, SEEN, DRAFT)
_CANONICAL = {flag.casefold(): flag for flag in SYSTEM_FLAGS}
_RECENT_KEY = RECENT.casefold()


def key(flag: str) -> str:
    """The comparison key of a flag."""
    return flag.casefold()


def canonical(flags: Iterable[str]) -> frozenset[str]:
    """Strip ``\\Recent``, capitalize system flags, drop case-insensitive duplicates."""
    seen: dict[str, str] = {}
    # Sorted so that, among spellings differing only in case, the choice is stable.
    for flag in sorted(flags):
        k = flag.casefold()
        if k == _RECENT_KEY or not flag or k in seen:
            continue
        seen[k] = _CANONICAL.get(k, flag)
    return frozenset(seen.values())


def has(flags: Iterable[str], flag: str) -> bool:
    k = flag.casefold()
    return any(f.casefold() == k for f in flags)


def same(a: Iterable[str], b: Iterable[str]) -> bool:
    return {f.casefold() for f in a} == {f.casefold() for f in b}


def apply(
    current: frozenset[str], mode: Literal["add", "remove", "replace"], flags: frozenset[str]
) -> frozenset[str]:
    """The flags after a STORE; existing spellings win over new ones on "add"."""
    given = canonical(flags)
    if mode == "replace":
        return given
    if mode == "add":
        have = {f.casefold() for f in current}
        return current | {f for f in given if f.casefold() not in have}
    drop = {f.casefold() for f in given}
    return frozenset(f for f in current if f.casefold() not in drop)


def keywords(flags: Iterable[str]) -> list[str]:
    """The flags that are keywords rather than system flags."""
    return [f for f in flags if not f.startswith("\\")]


def encode(flags: Iterable[str]) -> str:
    # Flags are IMAP atoms, which cannot contain a space.
    return " ".join(sorted(flags, key=str.casefold))


_decoded: dict[str, frozenset[str]] = {}


def decode(text: str) -> frozenset[str]:
    # Memoised: a mailbox has few distinct flag sets, and this runs per row.
    flags = _decoded.get(text)
    if flags is None:
        if len(_decoded) > 4096:
            _decoded.clear()
        flags = _decoded[text] = frozenset(text.split()) if text else frozenset()
    return flags
