"""Account names: one normal form, used at creation and at every login.

Names are compared exactly, but are lower-cased on the way in, so "Alice"
and "alice" reach the same account (users type their address in any case).
"""

from __future__ import annotations

import re

MAX_USERNAME = 255
# Local part of an address or an address, plus the usual separators; no space,
# no quotes and no control characters, so a name is always a bare IMAP atom-ish
# string and a single log token.
_VALID = re.compile(r"[a-z0-9][a-z0-9._+@-]*\Z")


class InvalidUsername(ValueError):
    pass


def normalize_username(name: str) -> str:
    return name.lower()


def validate_username(name: str) -> str:
    """The normal form of ``name``; InvalidUsername explains what is wrong."""
    norm = normalize_username(name)
    if not norm:
        raise InvalidUsername("the user name is empty")
    if len(norm.encode("utf-8")) > MAX_USERNAME:
        raise InvalidUsername(f"the user name is longer than {MAX_USERNAME} bytes")
    if not _VALID.match(norm):
        raise InvalidUsername(
            "a user name starts with a letter or digit and holds only letters, "
            "digits and . _ + @ -"
        )
    return norm
