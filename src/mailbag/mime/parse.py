"""Parse a message once into :class:`ParsedMessage` (RFC 5322 §2.1 header and
body; RFC 2045 §5-6 Content-Type and Content-Transfer-Encoding; RFC 2046 §5.1
multipart boundaries, §5.2.1 message/rfc822; RFC 6532 §3.7 message/global;
RFC 9051 §7.5.2 ENVELOPE/BODYSTRUCTURE; RFC 5256 §2.1 base subject; RFC 8970
preview).

A byte-offset scanner, not the stdlib email package: it walks the raw bytes
with ``find`` and records absolute offsets, so that FETCH can later slice any
section straight out of the blob. Boundary lines are recognised as Dovecot's
message-parser.c does: a line starting with "--" and an active boundary (the
longest matching one wins, the innermost on ties), whatever follows it. A part
ends at the line break before the next boundary line; a missing close
delimiter ends the multipart at its parent's next boundary or at the end.
Nesting deeper than :data:`MAX_DEPTH` is read as text/plain leaves, and parts
beyond :data:`MAX_PARTS` stay in their parent's body without being listed.

Nothing here raises on malformed input.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

from mailbag.mime.addresses import RawAddress
from mailbag.mime.entity import Entity
from mailbag.mime.headers import (
    decode_words,
    is_blank_line,
    line_end,
    split_fields,
    to_str,
    unfold,
)
from mailbag.mime.message import Address, ParsedMessage
from mailbag.mime.params import parse_content_type, parse_encoding
from mailbag.mime.render import envelope_addresses, render_bodies, render_envelope
from mailbag.mime.subject import base_subject

MAX_DEPTH = 50
MAX_PARTS = 10_000     # per message: bounds BODYSTRUCTURE size and parse time
ENCAPSULATING = frozenset({("message", "rfc822"), ("message", "global")})


class _Scanner:
    __slots__ = ("raw", "end", "stack", "parts")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.end = len(raw)
        self.stack: list[bytes] = []   # active boundaries, "--" included, outermost first
        self.parts = 0

    def boundary_at(self, pos: int) -> int:
        """Index in the stack of the boundary the line at *pos* starts, or -1."""
        raw = self.raw
        best, best_len = -1, -1
        for i in range(len(self.stack) - 1, -1, -1):
            b = self.stack[i]
            if len(b) > best_len and raw.startswith(b, pos):
                best, best_len = i, len(b)
        return best

    def next_boundary(self, pos: int) -> tuple[int, int]:
        """The next boundary line at or after line start *pos*: (offset, index),
        or (end, -1)."""
        if not self.stack:
            return self.end, -1
        raw, end = self.raw, self.end
        if raw.startswith(b"--", pos):
            idx = self.boundary_at(pos)
            if idx >= 0:
                return pos, idx
        while True:
            j = raw.find(b"\n--", pos, end)
            if j < 0:
                return end, -1
            pos = j + 1
            idx = self.boundary_at(pos)
            if idx >= 0:
                return pos, idx

    def end_before(self, line: int, floor: int) -> int:
        """Where a body ends when a boundary line starts at *line*: the line
        break before the boundary belongs to the boundary (RFC 2046 §5.1.1)."""
        raw = self.raw
        if line >= self.end:
            return self.end
        if line - 2 >= floor and raw[line - 2] == 0x0D and raw[line - 1] == 0x0A:
            return line - 2
        if line - 1 >= floor and raw[line - 1] == 0x0A:
            return line - 1
        return max(floor, line)

    def header(self, pos: int) -> tuple[int, int, int]:
        """Scan a header from *pos*: (body_start, stop, boundary index).

        Stops after the blank line, at end of data, or before a boundary line
        (then body_start == stop and the index is that boundary's)."""
        raw, end = self.raw, self.end
        check = bool(self.stack)
        while pos < end:
            nxt = line_end(raw, pos, end)
            if is_blank_line(raw, pos, nxt):
                return nxt, nxt, -2
            if check and raw[pos] == 0x2D:
                idx = self.boundary_at(pos)
                if idx >= 0:
                    return pos, pos, idx
            pos = nxt
        return end, end, -1


def _entity(sc: _Scanner, start: int, default: tuple[str, str], depth: int
            ) -> tuple[Entity, int, int]:
    """Parse one entity from *start*. Returns it with the offset of the boundary
    line that ended it (or end of data) and that boundary's stack index (-1)."""
    body_start, stop, idx = sc.header(start)
    fields = split_fields(sc.raw, start, body_start)
    ct = None
    for f in fields:
        if f.key == b"CONTENT-TYPE":
            ct = f.value
            break
    parsed = parse_content_type(ct)
    if parsed is None:
        typ, sub, sv = default[0], default[1], None
    else:
        typ, sub, sv = parsed
    enc = parse_encoding(next((f.value for f in fields if f.key == b"CONTENT-TRANSFER-ENCODING"),
                              None))
    e = Entity(start, body_start, body_start, fields, typ, sub, sv, enc)
    boundary = None
    if typ == "multipart" and sv is not None:
        boundary = next((v for k, v in sv.decoded if k == "boundary"), None)
    capped = depth >= MAX_DEPTH
    if typ == "multipart" and (capped or not boundary):
        # No usable boundary (or too deep): the body is opaque text.
        e.type, e.subtype, e.ctype = "text", "plain", None
    elif (typ, sub) in ENCAPSULATING and capped:
        e.type, e.subtype, e.ctype = "text", "plain", None

    if idx != -2:
        # The header ran into a boundary line or the end of data: empty body
        # (an encapsulated message is then an empty one, so ENVELOPE exists).
        if (e.type, e.subtype) in ENCAPSULATING:
            e.message = Entity(body_start, body_start, body_start, [], "text", "plain", None, "7bit")
        return e, stop, idx

    if e.type == "multipart" and boundary:
        stop, idx = _multipart(sc, e, b"--" + boundary.encode("utf-8", "surrogateescape"), depth)
    elif (e.type, e.subtype) in ENCAPSULATING:
        e.message, stop, idx = _entity(sc, body_start, ("text", "plain"), depth + 1)
    else:
        stop, idx = sc.next_boundary(body_start)
    e.body_end = sc.end_before(stop, body_start) if idx >= 0 else sc.end
    e.lines = sc.raw.count(b"\n", body_start, e.body_end)
    return e, stop, idx


def _multipart(sc: _Scanner, e: Entity, boundary: bytes, depth: int) -> tuple[int, int]:
    """Read the parts of multipart *e*; returns where its body stops (as _entity)."""
    raw = sc.raw
    child_default = ("message", "rfc822") if e.subtype == "digest" else ("text", "plain")
    sc.stack.append(boundary)
    mine = len(sc.stack) - 1
    try:
        stop, idx = sc.next_boundary(e.body_start)
        while True:
            if idx != mine:  # end of data, or a parent's boundary: no close delimiter
                return stop, idx
            after = stop + len(boundary)
            nxt = line_end(raw, stop, sc.end)
            if raw.startswith(b"--", after):
                sc.stack.pop()
                return sc.next_boundary(nxt)  # the epilogue runs to a parent's boundary
            if sc.parts >= MAX_PARTS:
                # Past the limit the parts stay in the body but are not listed.
                stop, idx = sc.next_boundary(nxt)
                continue
            sc.parts += 1
            child, stop, idx = _entity(sc, nxt, child_default, depth + 1)
            e.children.append(child)
    finally:
        del sc.stack[mine:]


def _address(a: RawAddress) -> Address:
    def s(v: bytes | None) -> str | None:
        return None if v is None else to_str(v)
    return Address(s(a.name), s(a.mailbox), s(a.host), s(a.adl))


def _header_str(e: Entity, key: bytes) -> str | None:
    value = e.header(key)
    return None if value is None else to_str(unfold(value))


_MSGID = re.compile(r"<[^<>\s]*>")


# RFC 5322 §3.3 (and RFC 2822 §3.3 before it): "time = time-of-day FWS
# zone" -- white space must separate the time of day from its zone. A zone
# glued to the time ("00:01+0000") is no date-time in either the current or
# the obsolete syntax (§4.3), so the Date: "cannot be parsed" and RFC 5256
# §2.2 takes the INTERNALDATE as the sent date, as Dovecot does; Python's
# parser would guess at it.
_GLUED_ZONE = re.compile(r"\d:\d\d(?::\d\d)?[+\-A-Za-z]")


def date_has_glued_zone(value: str) -> bool:
    return _GLUED_ZONE.search(value) is not None


def _date(value: str | None) -> datetime | None:
    if not value or date_has_glued_zone(value):
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except Exception:
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:  # "-0000": the time is UTC, its zone unknown (RFC 5322 §3.3)
        dt = dt.replace(tzinfo=UTC)
    return dt


def parse_tree(raw: bytes) -> Entity:
    """Only the entity tree (used by parse_message and by tests)."""
    sc = _Scanner(raw)
    root, _stop, _idx = _entity(sc, 0, ("text", "plain"), 0)
    # Whatever follows is ours too: there is no parent to hand it to.
    root.body_end = len(raw) if root.body_start <= len(raw) else root.body_start
    root.lines = raw.count(b"\n", root.body_start, root.body_end)
    return root


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse *raw* (the whole message as stored). Never raises on bad input."""
    from mailbag.mime.text import preview_of

    root = parse_tree(raw)
    part = root.to_part()
    addrs = envelope_addresses(root)
    subject_raw = _header_str(root, b"SUBJECT")
    subject = decode_words(subject_raw) if subject_raw is not None else ""
    refs = _header_str(root, b"REFERENCES") or ""
    mid = _header_str(root, b"MESSAGE-ID")
    irt = _header_str(root, b"IN-REPLY-TO")
    body, bodystructure = render_bodies(root)
    try:
        preview = preview_of(raw, part)
    except Exception:  # a preview is a nicety; never lose the message over it
        preview = ""
    return ParsedMessage(
        root=part,
        envelope=render_envelope(root, addrs),
        body=body,
        bodystructure=bodystructure,
        sent_date=_date(_header_str(root, b"DATE")),
        subject=subject,
        base_subject=base_subject(subject),
        from_=tuple(_address(a) for a in addrs[b"FROM"]),
        to=tuple(_address(a) for a in addrs[b"TO"]),
        cc=tuple(_address(a) for a in addrs[b"CC"]),
        bcc=tuple(_address(a) for a in addrs[b"BCC"]),
        message_id=mid,
        in_reply_to=irt,
        references=tuple(_MSGID.findall(refs)),
        preview=preview,
    )
