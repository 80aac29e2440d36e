"""Shared helpers for the wire parser tests."""

from __future__ import annotations

from mailbag.wire.commands import NeedContinuation, ParserEvent
from mailbag.wire.parser import CommandParser, Limits


def events(data: bytes, limits: Limits | None = None, *, chunk: int | None = None,
           keep_continuations: bool = False) -> list[ParserEvent]:
    """Feed *data* (whole, or *chunk* bytes at a time) and collect events."""
    p = CommandParser(limits or Limits())
    out: list[ParserEvent] = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    budget = 10 * (len(data) + 10)
    for piece in pieces:
        p.feed(piece)
        while True:
            budget -= 1
            assert budget > 0, "parser made no progress"
            ev = p.next_event()
            if ev is None:
                break
            if keep_continuations or not isinstance(ev, NeedContinuation):
                out.append(ev)
    return out


def one(data: bytes, limits: Limits | None = None) -> ParserEvent:
    """Parse one command, checking byte-at-a-time feeding agrees."""
    whole = events(data, limits)
    assert len(whole) == 1, whole
    assert events(data, limits, chunk=1) == whole
    return whole[0]
