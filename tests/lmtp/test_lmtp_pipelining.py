"""Pipelined LMTP transactions (RFC 2920 with RFC 2033 §4.2): the server
reads and answers the next MAIL/RCPT while the previous message is still
being committed, but every reply leaves in order, and the per-recipient
replies of a message only once it is stored."""

from __future__ import annotations

from lmtp_support import MAX_SIZE, RawLmtp, dot_stuff, find, make_message, with_store


def envelope(*rcpts: str) -> bytes:
    return (b"MAIL FROM:<s@example.org>\r\n"
            + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
            + b"DATA\r\n")


def test_pipelined_transactions_are_answered_in_order(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    c.send(envelope("alice@example.org"))
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    n = 5
    for i in range(n):
        # The message and, in the same write, the whole next transaction up
        # to DATA (or QUIT after the last one).
        tail = envelope("alice@example.org", "bob@example.org") if i < n - 1 else b"QUIT\r\n"
        c.send(dot_stuff(make_message(f"in order {i}")) + tail)
        rcpts = 1 if i == 0 else 2
        stored = [c.reply() for _ in range(rcpts)]
        # The DATA replies of message i come first: nothing of transaction
        # i+1 may overtake them.
        for code, text in stored:
            assert code == 250 and "Saved as UID" in text, (i, stored)
        if i < n - 1:
            got = [c.reply() for _ in range(4)]
            assert [g[0] for g in got] == [250, 250, 250, 354], (i, got)
            assert got[0][1] == "2.1.0 Sender OK"
            assert got[1][1].startswith("2.1.5 <alice@")
            assert got[2][1].startswith("2.1.5 <bob@")
        else:
            assert c.reply()[0] == 221
    c.close()
    for i in range(n):
        assert len(find(lmtp_server, f"in order {i}")) == 1
    for i in range(1, n):
        assert len(find(lmtp_server, f"in order {i}", user="bob", password="bob-pw")) == 1


def test_a_failed_transaction_does_not_affect_the_next(lmtp_server):
    async def setup(store):
        await store.create_account("tiny", "x")
        tiny = await store.get_account("tiny")
        await store.set_quota(tiny.id, 1000)

    with_store(lmtp_server.data_dir, setup)
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    # Accepted at RCPT (no SIZE, the mailbox is empty), refused at DATA.
    c.send(envelope("tiny@example.org"))
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    big = make_message("too big for tiny", "b" * 3000 + "\r\n")
    c.send(dot_stuff(big) + envelope("tiny@example.org", "alice@example.org"))
    code, text = c.reply()
    assert (code, text.split()[0]) == (552, "5.2.2")
    # The next transaction, read while the first was being stored, is whole.
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    c.send(dot_stuff(make_message("after the failure")) + b"RSET\r\nNOOP\r\n")
    r_tiny, r_alice = c.reply(), c.reply()
    assert r_tiny[0] == 250 and r_alice[0] == 250
    assert [c.reply()[0] for _ in range(2)] == [250, 250]
    # An oversized message fails alone too (552 5.3.4), the session goes on.
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(make_message("huge one", "z" * (MAX_SIZE + 10) + "\r\n"))
           + envelope("alice@example.org"))
    assert c.reply()[:1] == (552,)
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(dot_stuff(make_message("after oversized")))
    assert c.reply()[0] == 250
    c.close()
    assert len(find(lmtp_server, "after the failure")) == 1
    assert len(find(lmtp_server, "after oversized")) == 1
    assert find(lmtp_server, "huge one") == []

    async def tiny_inbox(store):
        tiny = await store.get_account("tiny")
        return await store.get_mailbox(tiny.id, "INBOX")

    assert with_store(lmtp_server.data_dir, tiny_inbox).messages == 1   # the small one only
