"""Flags and keywords (RFC 9051 §2.3.2): system flags are canonicalised,
unknown system flags refused, \\Recent never stored by a client.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailbag.imap.registry import CommandError, bad

SYSTEM = {f.upper(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")}
MAX_KEYWORD = 100


def client_flags(flags: Iterable[str], allow_recent: bool = False) -> frozenset[str]:
    out: set[str] = set()
    for flag in flags:
        if flag.startswith("\\"):
            canon = SYSTEM.get(flag.upper())
            if canon is None:
                if flag.upper() == "\\RECENT" and allow_recent:
                    continue
                raise bad(f"Invalid system flag {flag}")
            out.add(canon)
        else:
            if len(flag) > MAX_KEYWORD:
                raise CommandError("Keyword too long", "LIMIT")
            out.add(flag)
    return frozenset(out)
