"""Framing: synchronizing and non-synchronizing literals, literal8, limits,
AUTHENTICATE and IDLE lines, discard_buffer, byte-at-a-time feeding."""

from __future__ import annotations

import pytest

from mailbag.wire import commands as c
from mailbag.wire.commands import NeedContinuation, ProtocolError
from mailbag.wire.parser import CommandParser, Limits

from .helpers import events


def drain(p: CommandParser) -> list[c.ParserEvent]:
    out: list[c.ParserEvent] = []
    for _ in range(10000):
        ev = p.next_event()
        if ev is None:
            return out
        out.append(ev)
    raise AssertionError("no progress")


def test_sync_literal_asks_for_continuation_once() -> None:
    p = CommandParser(Limits())
    p.feed(b"a LOGIN {4}\r\n")
    assert drain(p) == [NeedContinuation(4)]
    p.feed(b"fr")
    assert drain(p) == []
    p.feed(b"ed {2}\r\n")
    assert drain(p) == [NeedContinuation(2)]
    p.feed(b"pw\r\n")
    assert drain(p) == [c.Login("a", b"fred", b"pw")]


def test_sync_literal_zero_length() -> None:
    assert events(b"a LOGIN {0}\r\n {0}\r\n\r\n", keep_continuations=True) == [
        NeedContinuation(0), NeedContinuation(0), c.Login("a", b"", b"")]


@pytest.mark.parametrize("marker", [b"{5+}", b"~{5+}"])
def test_non_sync_literals_do_not_ask(marker: bytes) -> None:
    data = b"a APPEND x " + marker + b"\r\nhello\r\n"
    evs = events(data, keep_continuations=True)
    assert evs == [c.Append("a", "x", (c.AppendMessage((), None, b"hello", marker[0] == 0x7E),))]


def test_literal8_sync_asks_for_continuation() -> None:
    # RFC 3516 literal8 "~{n}" is synchronizing like "{n}": the client waits.
    evs = events(b"a APPEND x ~{3}\r\na\0b\r\n", keep_continuations=True)
    assert evs == [NeedContinuation(3), c.Append("a", "x", (c.AppendMessage((), None, b"a\0b", True),))]


def test_literal_containing_crlf_and_markers() -> None:
    body = b"line {5}\r\n\r\nx LOGOUT\r\n"
    data = b"a APPEND x {%d}\r\n" % len(body) + body + b"\r\nb NOOP\r\n"
    for chunk in (None, 1, 3, 7):
        assert events(data, chunk=chunk) == [
            c.Append("a", "x", (c.AppendMessage((), None, body),)), c.Noop("b")]


def test_sync_literal_over_limit_is_refused_and_command_dropped() -> None:
    p = CommandParser(Limits(max_literal=10))
    p.feed(b"a APPEND x {11}\r\nb NOOP\r\n")
    evs = drain(p)
    assert evs[0] == ProtocolError("a", evs[0].message, code="TOOBIG", status="NO")  # type: ignore[union-attr]
    assert evs[1:] == [c.Noop("b")]


def test_sync_literal_over_command_size() -> None:
    lim = Limits(max_literal=100, max_command_size=150)
    evs = events(b"a APPEND x {100}\r\n" + b"x" * 100 + b" {100}\r\nb NOOP\r\n", lim,
                 keep_continuations=True)
    assert evs[0] == NeedContinuation(100)
    assert isinstance(evs[1], ProtocolError) and evs[1].code == "TOOBIG" and evs[1].tag == "a"
    # the client does not send the refused second literal; the next command parses
    assert evs[2] == c.Noop("b")


@pytest.mark.parametrize("chunk", [None, 1, 4096])
def test_non_sync_literal_over_limit_is_skipped(chunk: int | None) -> None:
    lim = Limits(max_literal=10)
    data = b"a APPEND x {20+}\r\n" + b"y" * 20 + b" {3+}\r\nabc\r\nb NOOP\r\n"
    evs = events(data, lim, chunk=chunk)
    assert len(evs) == 2
    assert isinstance(evs[0], ProtocolError) and evs[0].code == "TOOBIG" and evs[0].tag == "a"
    assert not evs[0].fatal
    assert evs[1] == c.Noop("b")


def test_non_sync_literal_skipped_without_buffering() -> None:
    p = CommandParser(Limits(max_literal=10))
    p.feed(b"a APPEND x {100000+}\r\n")
    assert drain(p) == []
    for _ in range(99):
        p.feed(b"z" * 1000)
        assert drain(p) == []
        assert p.buffered == 0
    p.feed(b"z" * 1000)
    evs = drain(p)
    assert isinstance(evs[0], ProtocolError) and evs[0].code == "TOOBIG"
    p.feed(b"\r\nb NOOP\r\n")
    assert drain(p) == [c.Noop("b")]


def test_absurd_non_sync_literal_is_fatal() -> None:
    evs = events(b"a APPEND x {99999999999999+}\r\nxx")
    assert len(evs) == 1
    assert isinstance(evs[0], ProtocolError) and evs[0].fatal and evs[0].code == "TOOBIG"


def test_sync_literal_with_bad_prefix_is_refused_before_data() -> None:
    evs = events(b"a FROB {5}\r\nb NOOP\r\n", keep_continuations=True)
    assert isinstance(evs[0], ProtocolError) and evs[0].tag == "a"
    assert "Unknown command FROB" in evs[0].message
    assert evs[1] == c.Noop("b")


def test_literal8_outside_append_refused_before_data() -> None:
    evs = events(b"a LOGIN ~{5}\r\nb NOOP\r\n", keep_continuations=True)
    assert isinstance(evs[0], ProtocolError) and "literal8" in evs[0].message
    assert evs[1] == c.Noop("b")


@pytest.mark.parametrize("chunk", [None, 1, 100])
def test_overlong_line_is_skipped(chunk: int | None) -> None:
    lim = Limits(max_line=100)
    data = b"a LOGIN " + b"x" * 500 + b" y\r\nb NOOP\r\n"
    evs = events(data, lim, chunk=chunk)
    assert len(evs) == 2, evs
    assert isinstance(evs[0], ProtocolError) and evs[0].code == "TOOBIG" and evs[0].tag == "a"
    assert evs[1] == c.Noop("b")


def test_overlong_line_never_buffered() -> None:
    p = CommandParser(Limits(max_line=100))
    p.feed(b"a NOOP ")
    assert drain(p) == []
    errors = []
    for _ in range(100):
        p.feed(b"x" * 1000)
        errors += drain(p)
        assert p.buffered <= 1000
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    p.feed(b"\r\nb NOOP\r\n")
    assert drain(p) == [c.Noop("b")]


def test_overlong_line_ending_in_non_sync_literal_skips_it() -> None:
    lim = Limits(max_line=50)
    data = b"a APPEND " + b"x" * 100 + b" {5+}\r\nb NOO\r\nc NOOP\r\n"
    for chunk in (None, 1, 7):
        evs = events(data, lim, chunk=chunk)
        assert len(evs) == 2
        assert isinstance(evs[0], ProtocolError)
        assert evs[1] == c.Noop("c")


def test_line_limit_counts_all_text_of_a_command() -> None:
    lim = Limits(max_line=40)
    data = b"a LOGIN {10+}\r\n" + b"u" * 10 + b" " + b"p" * 30 + b"\r\nb NOOP\r\n"
    evs = events(data, lim)
    assert isinstance(evs[0], ProtocolError) and evs[0].code == "TOOBIG"
    assert evs[1] == c.Noop("b")


def test_nesting_limit() -> None:
    lim = Limits(max_nesting=3)
    ok = events(b"a SEARCH (((SEEN)))\r\n", lim)
    assert isinstance(ok[0], c.Search)
    bad = events(b"a SEARCH ((((SEEN))))\r\n", lim)
    assert isinstance(bad[0], ProtocolError) and bad[0].code == "LIMIT" and bad[0].status == "BAD"


def test_deep_not_chain_is_limited_not_crashing() -> None:
    evs = events(b"a SEARCH " + b"NOT " * 5000 + b"SEEN\r\n")
    assert isinstance(evs[0], ProtocolError) and evs[0].code == "LIMIT"
    evs = events(b"a SEARCH " + b"OR SEEN " * 100 + b"SEEN\r\n")
    assert isinstance(evs[0], c.Search)


def test_limits_can_change_at_runtime() -> None:
    p = CommandParser(Limits(max_literal=8))
    p.feed(b"a LOGIN {9}\r\n")
    ev = p.next_event()
    assert isinstance(ev, ProtocolError) and ev.code == "TOOBIG"
    p.limits = Limits()
    p.feed(b"a LOGIN {9}\r\n")
    assert p.next_event() == NeedContinuation(9)
    p.limits.max_literal = 1
    p.feed(b"123456789 x\r\nb LOGIN {2}\r\n")
    assert p.next_event() == c.Login("a", b"123456789", b"x")
    ev = p.next_event()
    assert isinstance(ev, ProtocolError) and ev.code == "TOOBIG"


def test_auth_line_mode() -> None:
    p = CommandParser()
    p.feed(b"a AUTHENTICATE PLAIN\r\nAGZyZWQAcHc=\r\nb NOOP\r\n")
    assert p.next_event() == c.Authenticate("a", "PLAIN", None)
    p.expect_auth_line()
    assert p.next_event() == c.AuthLine(b"AGZyZWQAcHc=")
    assert p.next_event() == c.Noop("b")


def test_auth_line_cancel_and_raw() -> None:
    p = CommandParser()
    p.expect_auth_line()
    p.feed(b"*\r\n")
    assert p.next_event() == c.AuthLine(b"*")
    p.expect_auth_line()
    p.feed(b"\r\n")
    assert p.next_event() == c.AuthLine(b"")


def test_idle_done() -> None:
    p = CommandParser()
    p.feed(b"a IDLE\r\n")
    assert p.next_event() == c.Idle("a")
    p.expect_idle_done()
    got = []
    for ch in b"done\r\nb NOOP\r":
        p.feed(bytes([ch]))
        got += drain(p)
    assert got == [c.IdleDone()]
    p.feed(b"\n")
    assert p.next_event() == c.Noop("b")


def test_idle_other_line_is_error_and_back_to_command_mode() -> None:
    p = CommandParser()
    p.expect_idle_done()
    p.feed(b"b NOOP\r\nc NOOP\r\n")
    ev = p.next_event()
    assert isinstance(ev, ProtocolError) and "DONE" in ev.message
    assert p.next_event() == c.Noop("c")


def test_discard_buffer_drops_pipelined_input() -> None:
    p = CommandParser()
    p.feed(b"a STARTTLS\r\nb LOGIN evil injected\r\n")
    assert p.next_event() == c.StartTLS("a")
    p.discard_buffer()
    assert p.next_event() is None
    p.feed(b"c NOOP\r\n")
    assert p.next_event() == c.Noop("c")


def test_discard_buffer_drops_partial_command() -> None:
    p = CommandParser()
    p.feed(b"a LOGIN {3}\r\n")
    assert p.next_event() == NeedContinuation(3)
    p.discard_buffer()
    p.feed(b"c NOOP\r\n")
    assert p.next_event() == c.Noop("c")


def test_cancel_literal() -> None:
    p = CommandParser()
    p.feed(b"a APPEND x {3}\r\n")
    assert p.next_event() == NeedContinuation(3)
    p.cancel_literal()
    p.feed(b"b NOOP\r\n")
    assert p.next_event() == c.Noop("b")


def test_pipelined_commands_every_split() -> None:
    data = (b"a LOGIN {4+}\r\nfred pw\r\nb SELECT INBOX\r\n"
            b"c FETCH 1:* (FLAGS)\r\nd APPEND x {3}\r\nabc\r\ne LOGOUT\r\n")
    whole = events(data)
    assert [type(e).__name__ for e in whole] == ["Login", "Select", "Fetch", "Append", "Logout"]
    for cut in range(len(data) + 1):
        p = CommandParser()
        p.feed(data[:cut])
        got = [e for e in drain(p) if not isinstance(e, NeedContinuation)]
        p.feed(data[cut:])
        got += [e for e in drain(p) if not isinstance(e, NeedContinuation)]
        assert got == whole, cut


def test_literal_size_with_absurd_digit_count() -> None:
    evs = events(b"a APPEND x {" + b"9" * 40 + b"+}\r\nzz")
    assert len(evs) == 1 and isinstance(evs[0], ProtocolError) and evs[0].fatal
    evs = events(b"a APPEND x {" + b"9" * 40 + b"}\r\nb NOOP\r\n")
    assert isinstance(evs[0], ProtocolError) and evs[0].code == "TOOBIG" and evs[0].status == "NO"
    assert evs[1] == c.Noop("b")
