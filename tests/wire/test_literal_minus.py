"""LITERAL- (RFC 7888 §5; RFC 9051 §4.3): with max_nonsync_literal = 4096 a
non-synchronizing literal of up to 4096 octets is read as usual, a larger one
is refused with a tagged BAD [TOOBIG], its octets are counted off unread (never
taken for commands) and the next command is parsed normally. Synchronizing
literals of any size up to max_literal are unaffected."""

from __future__ import annotations

import pytest

from mailbag.wire import commands as c
from mailbag.wire.commands import NeedContinuation, ProtocolError
from mailbag.wire.parser import Limits

from .helpers import events

MINUS = Limits(max_nonsync_literal=4096)
# What the session uses before login: a small literal limit as well.
MINUS_PREAUTH = Limits(max_line=65536, max_literal=8192, max_nonsync_literal=4096)


def append(tag: str, body: bytes, binary: bool = False) -> c.Append:
    return c.Append(tag, "x", (c.AppendMessage((), None, body, binary),))


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_nonsync_literal_of_4096_is_accepted(chunk: int | None) -> None:
    body = b"a" * 4096
    data = b"a APPEND x {4096+}\r\n" + body + b"\r\nb NOOP\r\n"
    assert events(data, MINUS, chunk=chunk, keep_continuations=True) == [
        append("a", body), c.Noop("b")]


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
@pytest.mark.parametrize("marker", [b"{4097+}", b"~{4097+}"])
def test_larger_nonsync_literal_is_bad_toobig_and_skipped(chunk: int | None,
                                                          marker: bytes) -> None:
    # The literal holds what looks like commands: none of it may run.
    body = (b"c LOGOUT\r\n" * 500)[:4097]
    data = b"a APPEND x " + marker + b"\r\n" + body + b"\r\nb NOOP\r\n"
    evs = events(data, MINUS, chunk=chunk, keep_continuations=True)
    assert len(evs) == 2, evs
    err = evs[0]
    assert isinstance(err, ProtocolError)
    assert (err.tag, err.status, err.code, err.fatal) == ("a", "BAD", "TOOBIG", False)
    assert evs[1] == c.Noop("b")


def test_oversized_nonsync_literal_later_in_command_skips_the_rest() -> None:
    # LOGIN with a small first literal and a too-big second one: the whole
    # command goes, a third literal after it is followed and skipped too.
    data = (b"a LOGIN {4+}\r\nfred {5000+}\r\n" + b"p" * 5000
            + b" {3+}\r\nxyz\r\nb NOOP\r\n")
    evs = events(data, MINUS_PREAUTH, chunk=3)
    assert [type(e) for e in evs] == [ProtocolError, c.Noop]
    assert evs[0].status == "BAD" and evs[0].code == "TOOBIG"  # type: ignore[union-attr]


def test_sync_literal_above_4096_still_asks_for_continuation() -> None:
    body = b"s" * 5000
    data = b"a APPEND x {5000}\r\n" + body + b"\r\n"
    assert events(data, MINUS, keep_continuations=True) == [
        NeedContinuation(5000), append("a", body)]


def test_preauth_sync_literal_over_preauth_limit_is_no_toobig() -> None:
    # The pre-login literal limit (8 KiB) applies to synchronizing literals as
    # before: refused before the client sends it, no '+'.
    evs = events(b"a LOGIN {9000}\r\nb NOOP\r\n", MINUS_PREAUTH, keep_continuations=True)
    assert [type(e) for e in evs] == [ProtocolError, c.Noop]
    assert evs[0].status == "NO" and evs[0].code == "TOOBIG"  # type: ignore[union-attr]


def test_without_the_cap_large_nonsync_literals_are_read() -> None:
    # LITERAL+ (no max_nonsync_literal): the same 5000-octet literal is fine.
    body = b"z" * 5000
    assert events(b"a APPEND x {5000+}\r\n" + body + b"\r\n") == [append("a", body)]


def test_over_max_literal_is_still_no_under_literal_plus() -> None:
    evs = events(b"a APPEND x {20+}\r\n" + b"y" * 20 + b"\r\nb NOOP\r\n",
                 Limits(max_literal=10))
    assert [type(e) for e in evs] == [ProtocolError, c.Noop]
    assert evs[0].status == "NO" and evs[0].code == "TOOBIG"  # type: ignore[union-attr]


def test_over_both_limits_is_bad_under_literal_minus() -> None:
    # RFC 7888 §5 puts a client that breaks the LITERAL- promise in the
    # wrong (BAD), whatever other limit the literal is also over.
    evs = events(b"a APPEND x {9000+}\r\n" + b"y" * 9000 + b"\r\nb NOOP\r\n",
                 MINUS_PREAUTH)
    assert [type(e) for e in evs] == [ProtocolError, c.Noop]
    assert evs[0].status == "BAD" and evs[0].code == "TOOBIG"  # type: ignore[union-attr]


def test_beyond_max_command_size_is_still_fatal() -> None:
    evs = events(b"a APPEND x {99999999999+}\r\nxx", MINUS)
    assert len(evs) == 1 and isinstance(evs[0], ProtocolError) and evs[0].fatal
