"""Serialization of :class:`ParsedMessage` for the store (no RFC; the store's
own format). JSON arrays, not pickle: loading stored facts must never run code.

Byte strings (the pre-rendered ENVELOPE/BODYSTRUCTURE) travel as latin-1 text
so that every byte round-trips; the leading version number lets the format
change later. ``load`` raises ValueError on data it does not recognise.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailbag.mime.message import Address, ParsedMessage, Part

VERSION = 1


def _part(p: Part) -> list[Any]:
    return [p.header_start, p.body_start, p.body_end, p.type, p.subtype,
            [list(kv) for kv in p.params], p.encoding, p.lines,
            [_part(c) for c in p.children],
            _part(p.message) if p.message is not None else None]


def _addrs(addrs: tuple[Address, ...]) -> list[Any]:
    return [[a.name, a.mailbox, a.host, a.adl] for a in addrs]


def dump(msg: ParsedMessage, *, rendered: bool = True) -> bytes:
    """*rendered* False leaves out ENVELOPE, BODY and BODYSTRUCTURE (empty in
    the loaded result): for a store that keeps them in columns of their own
    so FETCH can read them without decoding the rest."""
    data = [
        VERSION,
        _part(msg.root),
        msg.envelope.decode("latin-1") if rendered else "",
        msg.body.decode("latin-1") if rendered else "",
        msg.bodystructure.decode("latin-1") if rendered else "",
        msg.sent_date.isoformat() if msg.sent_date is not None else None,
        msg.subject,
        msg.base_subject,
        _addrs(msg.from_), _addrs(msg.to), _addrs(msg.cc), _addrs(msg.bcc),
        msg.message_id,
        msg.in_reply_to,
        list(msg.references),
        msg.preview,
    ]
    # surrogateescape never applies: all str fields are valid text; ensure_ascii
    # keeps the output pure ASCII and safe for any column type.
    return json.dumps(data, separators=(",", ":")).encode("ascii")


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _ostr(v: Any) -> str | None:
    return None if v is None else _str(v)


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError("expected an integer")
    return v


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise ValueError("expected a list")
    return v


def _load_part(v: Any, depth: int = 0) -> Part:
    if depth > 200:
        raise ValueError("parts nested too deeply")
    f = _list(v)
    if len(f) != 10:
        raise ValueError("bad part")
    params = tuple((_str(kv[0]), _str(kv[1])) for kv in map(_list, _list(f[5])))
    return Part(
        header_start=_int(f[0]), body_start=_int(f[1]), body_end=_int(f[2]),
        type=_str(f[3]), subtype=_str(f[4]), params=params, encoding=_str(f[6]),
        lines=_int(f[7]),
        children=tuple(_load_part(c, depth + 1) for c in _list(f[8])),
        message=_load_part(f[9], depth + 1) if f[9] is not None else None,
    )


def _load_addrs(v: Any) -> tuple[Address, ...]:
    out = []
    for a in map(_list, _list(v)):
        if len(a) != 4:
            raise ValueError("bad address")
        out.append(Address(_ostr(a[0]), _ostr(a[1]), _ostr(a[2]), _ostr(a[3])))
    return tuple(out)


def load(data: bytes) -> ParsedMessage:
    try:
        f = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"facts are not valid JSON: {e}") from None
    f = _list(f)
    if len(f) != 16 or f[0] != VERSION:
        raise ValueError("unknown facts format")
    date = _ostr(f[5])
    return ParsedMessage(
        root=_load_part(f[1]),
        envelope=_str(f[2]).encode("latin-1"),
        body=_str(f[3]).encode("latin-1"),
        bodystructure=_str(f[4]).encode("latin-1"),
        sent_date=datetime.fromisoformat(date) if date is not None else None,
        subject=_str(f[6]),
        base_subject=_str(f[7]),
        from_=_load_addrs(f[8]), to=_load_addrs(f[9]), cc=_load_addrs(f[10]),
        bcc=_load_addrs(f[11]),
        message_id=_ostr(f[12]),
        in_reply_to=_ostr(f[13]),
        references=tuple(_str(r) for r in _list(f[14])),
        preview=_str(f[15]),
    )
