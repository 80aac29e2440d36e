"""Grammar of the QUOTA commands (RFC 9208 §4.1 and §7 "getquota",
"getquotaroot", "setquota"): the typed commands and their parsers.

Each parser reads from a wire.lexer.Reader positioned after the command name
and raises ParseError on bad syntax (a tagged BAD).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbag.wire.commands import Command
from mailbag.wire.lexer import ParseError, Reader

# RFC 9208 §7: resource-name = atom; mailbag never needs more than a handful.
MAX_RESOURCES = 16


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    root: str                           # quota root name, e.g. "" (RFC 9208 §4.1.1)


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    mailbox: str                        # RFC 9208 §4.1.2


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    root: str
    limits: tuple[tuple[str, int], ...]  # (upper-cased resource name, limit)


def parse_getquota(r: Reader, tag: str) -> GetQuota:
    """"GETQUOTA" SP quota-root-name (an astring)."""
    r.sp("a space before the quota root name")
    root = r.astring("a quota root name").decode("utf-8", "surrogateescape")
    r.end("GETQUOTA")
    return GetQuota(tag, root)


def parse_getquotaroot(r: Reader, tag: str) -> GetQuotaRoot:
    """"GETQUOTAROOT" SP mailbox."""
    r.sp("a space before the mailbox name")
    mailbox = r.mailbox()
    r.end("GETQUOTAROOT")
    return GetQuotaRoot(tag, mailbox)


def parse_setquota(r: Reader, tag: str) -> SetQuota:
    """"SETQUOTA" SP quota-root-name SP setquota-list, where
    setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")" and
    setquota-resource = resource-name SP number64."""
    r.sp("a space before the quota root name")
    root = r.astring("a quota root name").decode("utf-8", "surrogateescape")
    r.sp("a space before the quota list")
    r.expect(b"(", "'(' starting the quota list")
    limits: list[tuple[str, int]] = []
    while r.peek() != 0x29:
        if len(limits) >= MAX_RESOURCES:
            raise ParseError("SETQUOTA: too many resources", code="LIMIT")
        name = r.keyword("a quota resource name")
        r.sp("a space after the resource name")
        limits.append((name, r.number("a resource limit", wide=True)))
        if r.peek() != 0x20:
            break
        r.pos += 1
    r.expect(b")", "')' closing the quota list")
    r.end("SETQUOTA")
    return SetQuota(tag, root, tuple(limits))
