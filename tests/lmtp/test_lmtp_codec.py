"""The sans-IO LMTP codec: command parsing, dot-unstuffing, framing limits."""

from __future__ import annotations

import pytest

from mailbag.lmtp.codec import (
    DataReader,
    InputBuffer,
    Lhlo,
    Mail,
    Rcpt,
    Reply,
    SyntaxProblem,
    TooLong,
    parse_command,
    xtext_decode,
    xtext_encode,
)


def test_commands():
    assert parse_command(b"lhlo mx.test") == Lhlo("mx.test")
    m = parse_command(b"MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME")
    assert isinstance(m, Mail) and m.size == 100 and m.body == "8BITMIME"
    assert parse_command(b"MAIL FROM:<>").path.address == ""
    r = parse_command(b'RCPT TO:<@relay.test:"odd > name"@b.test> ORCPT=rfc822;x@y')
    assert isinstance(r, Rcpt) and r.path.local == "odd > name" and r.path.domain == "b.test"
    assert parse_command(b"RCPT TO:<alice>").path == parse_command(b"RCPT TO:<alice>").path
    assert parse_command(b"RCPT TO:<alice>").path.domain == ""


@pytest.mark.parametrize("line,code", [
    (b"MAIL FROM:a@b", 501), (b"MAIL FROM:<a@b> BODY=BINARYMIME", 555),
    (b"MAIL FROM:<a@b> FOO=1", 555), (b"MAIL FROM:<j\xc3\xb6@b>", 553),
    (b"RCPT TO:<>", 501), (b"RCPT TO:<a@>", 501), (b"MAIL FROM:<a@b> SIZE=x", 501),
    (b"\xff", 500),
])
def test_bad_commands(line, code):
    with pytest.raises(SyntaxProblem) as exc:
        parse_command(line)
    assert exc.value.reply.code == code


def test_reply_encoding():
    assert Reply(250, "2.1.5", "OK").encode() == b"250 2.1.5 OK\r\n"
    assert Reply(250, "", "mx", ("PIPELINING",)).encode() == b"250-mx\r\n250 PIPELINING\r\n"


def test_data_split_anywhere_and_unstuffed():
    wire = b"..a\r\n..\r\nb\r\n..\r\n.\r\nNOOP\r\n"
    for cut in range(len(wire)):
        inbuf, reader = InputBuffer(), DataReader(1 << 20)
        inbuf.feed(wire[:cut])
        body = reader.feed_from(inbuf)
        inbuf.feed(wire[cut:])          # the rest arrives later
        if body is None:
            body = reader.feed_from(inbuf)
        assert body == b".a\r\n.\r\nb\r\n.\r\n"
        assert bytes(inbuf.buf) == b"NOOP\r\n"


def test_empty_message_and_oversize():
    inbuf, reader = InputBuffer(), DataReader(1024)
    inbuf.feed(b".\r\n")
    assert reader.feed_from(inbuf) == b""
    inbuf, reader = InputBuffer(), DataReader(1024)
    for _ in range(10):
        inbuf.feed(b"x" * 1000 + b"\r\n")
        assert reader.feed_from(inbuf) is None
    assert len(reader.data) < 2048                 # dropped, not kept
    inbuf.feed(b".\r\n")
    assert reader.feed_from(inbuf) is not None and reader.oversized


def test_line_limit():
    inbuf = InputBuffer(max_line=16)
    inbuf.feed(b"x" * 40)
    assert isinstance(inbuf.next_line(), TooLong)
    inbuf.feed(b"yy\r\nNOOP\r\n")
    assert inbuf.next_line() == b"NOOP"


def test_xtext_round_trip():
    for text in ("Receipts", "a b+c=d", "Grüße/2026"):
        assert xtext_decode(xtext_encode(text)) == text
