"""Mailbox-name rules shared by every backend (RFC 9051 §5.1).

Names are full paths with "/" as the hierarchy separator. ``INBOX`` is
case-insensitive, and so is the first component of its inferiors; every other
name is case-sensitive.
"""

from __future__ import annotations

from mailbag.store.api import INBOX, SEPARATOR, NotAllowed

_INBOX_KEY = INBOX.casefold()


def normalize(name: str) -> str:
    """The stored spelling of ``name``; a trailing separator (a hint that the
    client wants to create children, RFC 9051 §6.3.4) is dropped."""
    if name.endswith(SEPARATOR):
        name = name[: -len(SEPARATOR)]
    parts = name.split(SEPARATOR)
    if not name or any(not p for p in parts):
        raise NotAllowed(f"invalid mailbox name {name!r}")
    if parts[0].casefold() == _INBOX_KEY:
        parts[0] = INBOX
    return SEPARATOR.join(parts)


def is_inbox(name: str) -> bool:
    return name == INBOX


def parents(name: str) -> list[str]:
    """Superior names, outermost first: "a/b/c" -> ["a", "a/b"]."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def is_inferior(name: str, of: str) -> bool:
    """True if ``name`` is below ``of`` in the hierarchy."""
    return name.startswith(of + SEPARATOR)


def renamed(name: str, old: str, new: str) -> str:
    """Where ``name`` (``old`` or one of its inferiors) goes when ``old`` becomes ``new``."""
    if name == old:
        return new
    return new + name[len(old) :]


def like_children(name: str) -> str:
    """A LIKE pattern matching the inferiors of ``name`` (escape char: "\\")."""
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + SEPARATOR + "%"
