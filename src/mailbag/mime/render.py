"""ENVELOPE, BODY and BODYSTRUCTURE in IMAP syntax (RFC 9051 §7.5.2 and the
"envelope", "body", "body-type-*" and "body-ext-*" rules of §9), rendered the
way Dovecot's imap-envelope.c and imap-bodystructure.c do:

* header values are sent as written (unfolded, not RFC 2047-decoded);
* Sender and Reply-To default to From when absent or empty;
* a text/* part always carries a charset parameter ("us-ascii" by default);
* a multipart without parts gets one empty text/plain part, since the grammar
  requires at least one;
* single-part extension data is md5 (the Content-MD5 field), disposition,
  language, location; multipart extension data is params, disposition,
  language, location.
"""

from __future__ import annotations

from mailbag.mime.addresses import RawAddress, parse_address_list
from mailbag.mime.entity import Entity
from mailbag.mime.headers import unfold
from mailbag.mime.params import parse_language, parse_structured
from mailbag.wire.values import nstring, quoted_or_literal

EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'


def _nstr(value: bytes | None) -> bytes:
    return b"NIL" if value is None else nstring(unfold(value))


def _str(value: bytes) -> bytes:
    return quoted_or_literal(value.replace(b"\x00", b""))


def render_addresses(addrs: list[RawAddress]) -> bytes:
    if not addrs:
        return b"NIL"
    out = [b"("]
    for a in addrs:
        out += [b"(", nstring(a.name), b" ", nstring(a.adl), b" ",
                nstring(a.mailbox), b" ", nstring(a.host), b")"]
    out.append(b")")
    return b"".join(out)


def envelope_addresses(e: Entity) -> dict[bytes, list[RawAddress]]:
    """The parsed address fields of a message header, with RFC 9051 defaults."""
    got = {k: parse_address_list(e.header(k))
           for k in (b"FROM", b"SENDER", b"REPLY-TO", b"TO", b"CC", b"BCC")}
    if not got[b"SENDER"]:
        got[b"SENDER"] = got[b"FROM"]
    if not got[b"REPLY-TO"]:
        got[b"REPLY-TO"] = got[b"FROM"]
    return got


def render_envelope(e: Entity, addrs: dict[bytes, list[RawAddress]] | None = None) -> bytes:
    """``(date subject from sender reply-to to cc bcc in-reply-to message-id)``."""
    if addrs is None:
        addrs = envelope_addresses(e)
    parts = [
        _nstr(e.header(b"DATE")),
        _nstr(e.header(b"SUBJECT")),
        render_addresses(addrs[b"FROM"]),
        render_addresses(addrs[b"SENDER"]),
        render_addresses(addrs[b"REPLY-TO"]),
        render_addresses(addrs[b"TO"]),
        render_addresses(addrs[b"CC"]),
        render_addresses(addrs[b"BCC"]),
        _nstr(e.header(b"IN-REPLY-TO")),
        _nstr(e.header(b"MESSAGE-ID")),
    ]
    return b"(" + b" ".join(parts) + b")"


def _params(params: tuple[tuple[bytes, bytes], ...], default_charset: bool) -> bytes:
    if not params and not default_charset:
        return b"NIL"
    out: list[bytes] = []
    seen_charset = False
    for name, value in params:
        if name.lower() == b"charset":
            seen_charset = True
        out.append(_str(name) + b" " + _str(value))
    if default_charset and not seen_charset:
        out.append(b'"charset" "us-ascii"')
    return b"(" + b" ".join(out) + b")"


def _common_ext(e: Entity) -> bytes:
    """Disposition, language and location (shared by both body kinds)."""
    out: list[bytes] = []
    disp = e.header(b"CONTENT-DISPOSITION")
    sv = parse_structured(disp) if disp is not None else None
    if sv is None or not sv.value:
        out.append(b"NIL")
    else:
        out.append(b"(" + _str(sv.value) + b" " + _params(sv.wire, False) + b")")
    lang = e.header(b"CONTENT-LANGUAGE")
    tags = parse_language(lang) if lang is not None else ()
    out.append(b"(" + b" ".join(_str(t) for t in tags) + b")" if tags else b"NIL")
    out.append(_nstr(e.header(b"CONTENT-LOCATION")))
    return b" " + b" ".join(out)


def render_bodies(e: Entity) -> tuple[bytes, bytes]:
    """BODY and BODYSTRUCTURE in one walk (ingest stores both)."""
    out: list[bytes] = []
    xout: list[bytes] = []
    _write_both(e, out, xout)
    return b"".join(out), b"".join(xout)


def _write_both(e: Entity, out: list[bytes], xout: list[bytes]) -> None:
    # Both forms side by side; what they share is rendered once per part.
    if e.is_multipart:
        out.append(b"(")
        xout.append(b"(")
        if e.children:
            for child in e.children:
                _write_both(child, out, xout)
        else:
            out.append(EMPTY_BODY)
            xout.append(EMPTY_BODYSTRUCTURE)
        sub = b" " + _str(e.subtype.encode())
        out.append(sub + b")")
        wire = e.ctype.wire if e.ctype is not None else ()
        xout.append(sub + b" " + _params(wire, False) + _common_ext(e) + b")")
        return
    text = e.type == "text"
    common = b"".join((
        b"(", _str(e.type.encode()), b" ", _str(e.subtype.encode()), b" ",
        _params(e.ctype.wire if e.ctype is not None else (), text),
        b" ", _nstr(e.header(b"CONTENT-ID")),
        b" ", _nstr(e.header(b"CONTENT-DESCRIPTION")),
        b" ", _str(e.encoding.encode("utf-8")),
        b" %d" % (e.body_end - e.body_start),
    ))
    out.append(common)
    xout.append(common)
    if text:
        lines = b" %d" % e.lines
        out.append(lines)
        xout.append(lines)
    elif e.message is not None:
        env = b" " + render_envelope(e.message) + b" "
        out.append(env)
        xout.append(env)
        _write_both(e.message, out, xout)
        lines = b" %d" % e.lines
        out.append(lines)
        xout.append(lines)
    out.append(b")")
    xout.append(b" " + _nstr(e.header(b"CONTENT-MD5")) + _common_ext(e) + b")")
