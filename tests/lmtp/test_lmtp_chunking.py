"""BDAT (RFC 3030 CHUNKING) on the LMTP server: chunks as they are (no dot
handling), one reply per recipient after BDAT LAST (RFC 2033 §4.2), whole
transactions pipelined without waiting, and errors that keep the session in
step with the client."""

from __future__ import annotations

from lmtp_support import MAX_SIZE, RawLmtp, find, make_message


def bdat_transaction(rcpts: list[str], message: bytes, chunk: int | None = None) -> bytes:
    out = b"MAIL FROM:<s@example.org>\r\n" + b"".join(
        b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
    chunk = chunk or max(len(message), 1)
    pieces = [message[i:i + chunk] for i in range(0, len(message), chunk)] or [b""]
    for n, piece in enumerate(pieces):
        last = b" LAST" if n == len(pieces) - 1 else b""
        out += b"BDAT %d%s\r\n" % (len(piece), last) + piece
    return out


def test_chunking_is_offered_and_chunks_are_kept_as_sent(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    code, text = c.cmd("LHLO client.test")
    assert code == 250 and "CHUNKING" in text.splitlines()
    # Lines starting with a dot and a lone "." line are data, not markers.
    msg = make_message("bdat chunks", ".leading dot\r\n.\r\nafter a dot line\r\n")
    c.send(bdat_transaction(["alice@example.org", "bob@example.org"], msg, chunk=50))
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    chunks = -(-len(msg) // 50)
    for _ in range(chunks - 1):
        code, text = c.reply()
        assert code == 250 and text.endswith("50 octets received")
    # BDAT LAST: one reply per recipient.
    assert [c.reply()[0] for _ in range(2)] == [250, 250]
    c.close()
    [raw] = find(lmtp_server, "bdat chunks")
    assert raw.endswith(b"\r\n\r\n.leading dot\r\n.\r\nafter a dot line\r\n")
    assert len(find(lmtp_server, "bdat chunks", user="bob", password="bob-pw")) == 1


def test_pipelined_bdat_transactions_are_answered_in_order(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    n = 12
    burst = b"".join(
        bdat_transaction(["alice@example.org"] if i % 3 else
                         ["alice@example.org", "nobody@example.org"],
                         make_message(f"bdat burst {i:02d}"))
        for i in range(n)) + b"QUIT\r\n"
    c.send(burst)                     # everything at once, no waiting
    for i in range(n):
        assert c.reply()[0] == 250                          # MAIL
        assert c.reply()[0] == 250                          # RCPT alice
        if i % 3 == 0:
            assert c.reply()[0] == 550                      # RCPT nobody
        code, text = c.reply()                              # BDAT LAST, alice
        assert code == 250 and "Saved as UID" in text, (i, text)
    assert c.reply()[0] == 221
    c.close()
    for i in range(n):
        [raw] = find(lmtp_server, f"bdat burst {i:02d}")
        assert raw.startswith(b"Return-Path: <s@example.org>\r\n")


def test_bdat_errors_keep_the_session_in_step(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    # No MAIL: refused, but the chunk is read (not taken for commands).
    c.send(b"BDAT 6 LAST\r\nNOOP\r\n")
    assert c.reply()[0] == 503
    assert c.cmd("NOOP")[0] == 250
    # No valid recipient: the same.
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<nobody@example.org>\r\n"
           b"BDAT 6 LAST\r\nRSET\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 550, 503]
    assert c.cmd("RSET")[0] == 250
    # DATA in the middle of a BDAT transaction is refused.
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nBDAT 4\r\nabcd")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("RSET")[0] == 250
    # Too big in total: every chunk is read, one 552 per recipient at LAST,
    # and the next transaction works.
    big = b"y" * (MAX_SIZE // 2 + 10)
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\n"
           + b"BDAT %d\r\n" % len(big) + big + b"BDAT %d LAST\r\n" % len(big) + big)
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    code, text = c.reply()
    assert (code, text.split()[0]) == (552, "5.3.4")
    c.send(bdat_transaction(["alice@example.org"], make_message("bdat after too big")))
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    # A BDAT line that does not parse: the chunk size is unknown, so the
    # session cannot find the next command and closes.
    c.send(b"BDAT many\r\n")
    assert c.reply()[0] == 501
    assert c.reply()[0] == 421
    c.close()
    assert len(find(lmtp_server, "bdat after too big")) == 1
