"""The sans-IO POP3 codec: line framing with a length limit, command parsing,
CRLF conversion, byte-stuffing, TOP and unique-ids (RFC 1939 §3, §7, §11)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailbag.pop3.codec import (
    BadCommand,
    Line,
    LineReader,
    TooLong,
    dot_stuff,
    err,
    parse_command,
    to_wire,
    top,
    uidl,
    wire_size,
)


def events(reader: LineReader) -> list[object]:
    out = []
    while (ev := reader.next_event()) is not None:
        out.append(ev)
    return out


def test_lines_split_on_crlf_and_bare_lf_fed_byte_by_byte():
    r = LineReader()
    got: list[object] = []
    for b in b"STAT\r\nLIST 1\nQUIT\r\n":
        r.feed(bytes([b]))
        got += events(r)
    assert got == [Line(b"STAT"), Line(b"LIST 1"), Line(b"QUIT")]


def test_a_long_line_is_dropped_whole_and_reported_once():
    r = LineReader(max_line=16)
    r.feed(b"USER " + b"x" * 40)
    assert events(r) == []                     # nothing yet, and not buffered
    assert not r.buffered
    r.feed(b"y" * 40 + b"\r\nNOOP\r\n")
    assert events(r) == [TooLong(16), Line(b"NOOP")]


def test_a_line_just_over_the_limit_in_one_chunk_is_too_long():
    r = LineReader(max_line=8)
    r.feed(b"123456789\r\nok\r\n")
    assert events(r) == [TooLong(8), Line(b"ok")]


def test_discard_buffer_forgets_pipelined_input():
    r = LineReader()
    r.feed(b"USER evil\r\nPASS x\r\n")
    r.discard_buffer()
    assert events(r) == []


def test_parse_command():
    cmd = parse_command(b"pass my secret pw ")
    assert cmd.name == "PASS" and cmd.arg == b"my secret pw "
    assert parse_command(b"LIST").arg == b""
    assert parse_command(b"top 1 10").args() == ["1", "10"]
    for bad in (b"", b" STAT", b"ST4T", b"\xffSTAT", b"A" * 21):
        try:
            parse_command(bad)
        except BadCommand:
            continue
        raise AssertionError(f"{bad!r} parsed")


def test_err_is_one_safe_line():
    assert err("No message 7") == b"-ERR No message 7\r\n"
    assert err("bad\r\nforged", "SYS/TEMP") == b"-ERR [SYS/TEMP] bad??forged\r\n"


def test_to_wire_converts_bare_lf_and_terminates_the_last_line():
    assert to_wire(b"a\nb\r\nc") == b"a\r\nb\r\nc\r\n"
    assert to_wire(b"a\r\n") == b"a\r\n"
    assert to_wire(b"") == b""
    assert to_wire(b"lone\rcr\n") == b"lone\rcr\r\n"
    assert wire_size(b"a\nb") == 6


def test_dot_stuffing():
    assert dot_stuff(b".a\r\nb\r\n..c\r\n.\r\n") == b"..a\r\nb\r\n...c\r\n..\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"


def test_top_takes_header_blank_line_and_n_body_lines():
    msg = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert top(msg, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top(msg, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"
    assert top(msg, 99) == msg
    assert top(b"A: 1\r\n", 5) == b"A: 1\r\n"            # no body at all
    assert top(b"\r\nbody\r\nmore\r\n", 1) == b"\r\nbody\r\n"  # no header


def test_uidl_is_printable_and_distinguishes_uidvalidity():
    assert uidl(1700000000, 5) == "000000056553F100"
    assert uidl(1, 2) != uidl(2, 1)
    assert all(0x21 <= ord(c) <= 0x7E for c in uidl(2**32 - 1, 2**32 - 1))


def unstuff(wire: bytes) -> bytes:
    """What a client does with a multi-line response (RFC 1939 §3)."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    lines = wire[:-3].split(b"\r\n")[:-1] if wire != b".\r\n" else []
    return b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)


@given(st.lists(st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b" ", b"x.y"]),
                max_size=30))
def test_the_size_is_what_the_client_receives(parts):
    raw = b"".join(parts)
    data = to_wire(raw)
    assert unstuff(dot_stuff(data)) == data
    assert wire_size(raw) == len(data)
