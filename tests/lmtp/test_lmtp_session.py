"""LMTP end to end against the real server: smtplib.LMTP, a raw pipelining
client, swaks --protocol LMTP; results are read back over IMAP."""

from __future__ import annotations

import shutil
import smtplib
import sqlite3
import subprocess

import pytest
from lmtp_support import (
    MAX_SIZE,
    RawLmtp,
    blob_files,
    dot_stuff,
    find,
    imap,
    make_message,
    message_rows,
    with_store,
)


def sock_path(server) -> str:
    return str(server.data_dir / "lmtp.sock")


def test_smtplib_lmtp_delivers_with_trace_headers(lmtp_server):
    with smtplib.LMTP("127.0.0.1", lmtp_server.lmtp_port) as client:
        refused = client.sendmail("sender@example.org", ["alice@example.org"],
                                  make_message("smtplib one"))
    assert refused == {}
    [raw] = find(lmtp_server, "smtplib one")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"Return-Path: <sender@example.org>\r\n")
    assert b"Delivered-To: alice@example.org\r\n" in head
    assert b"Received: from " in head and b"by mx.test (mailbag) with LMTP" in head
    assert b"for <alice@example.org>;" in head
    assert raw.endswith(b"\r\n\r\nHello.\r\n")


def test_smtplib_over_the_unix_socket(lmtp_server):
    with smtplib.LMTP(sock_path(lmtp_server)) as client:
        client.sendmail("", ["bob@example.org"], make_message("via unix socket"))
    [raw] = find(lmtp_server, "via unix socket", user="bob", password="bob-pw")
    assert raw.startswith(b"Return-Path: <>\r\n")


def test_lhlo_capabilities_and_refusals(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    assert c.greeting[0] == 220
    code, text = c.cmd("LHLO client.test")
    assert code == 250
    for ext in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8",
                f"SIZE {MAX_SIZE}"):
        assert ext in text.splitlines()
    assert c.cmd("VRFY alice")[0] == 502
    assert c.cmd("EHLO client.test")[0] == 500
    assert c.cmd("RCPT TO:<alice@example.org>") == (503, "5.5.1 Send MAIL first")
    assert c.cmd("DATA")[0] == 503
    code, text = c.cmd("X" * 5000)
    assert (code, text.split()[0]) == (500, "5.5.2")
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_unknown_user_is_refused_at_rcpt_and_others_still_get_it(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    code, text = c.cmd("RCPT TO:<nobody@example.org>")
    assert (code, text.split()[0]) == (550, "5.1.1")
    assert c.cmd("RCPT TO:<ALICE@Example.ORG>")[0] == 250    # case-insensitive
    assert c.cmd("RCPT TO:<bob@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(make_message("two of three")))
    first, second = c.reply(), c.reply()                     # one per accepted recipient
    assert first[0] == 250 and "<ALICE@Example.ORG>" in first[1]
    assert second[0] == 250 and "<bob@example.org>" in second[1]
    c.close()
    [raw] = find(lmtp_server, "two of three")
    # Two recipients: no Delivered-To, no "for", so both share one blob.
    assert b"Delivered-To:" not in raw and b"\tfor <" not in raw
    assert len(find(lmtp_server, "two of three", user="bob", password="bob-pw")) == 1


def test_pipelined_transactions_and_dot_unstuffing(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    body = ".starts with a dot\r\n..two dots\r\n.\r\nnot the end\r\n"
    # Everything up to DATA in one write (RFC 2920), twice.
    for n in (1, 2):
        c.send(b"MAIL FROM:<s@example.org> BODY=8BITMIME\r\nRCPT TO:<alice@x.test>\r\n"
               b"RCPT TO:<nobody@x.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(4)] == [250, 250, 550, 354]
        c.send(dot_stuff(make_message(f"pipelined {n}", body)))
        assert c.reply()[0] == 250
    c.close()
    for n in (1, 2):
        [raw] = find(lmtp_server, f"pipelined {n}")
        assert raw.endswith(b"\r\n\r\n" + body.encode())


def test_8bit_and_smtputf8(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    code, text = c.cmd("MAIL FROM:<jörg@example.org>")
    assert (code, text.split()[0]) == (553, "5.6.7")
    assert c.cmd("MAIL FROM:<jörg@example.org> SMTPUTF8 BODY=8BITMIME")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    msg = make_message("utf8 grüße", "Grüße aus Köln\r\n")
    c.send(dot_stuff(msg))
    assert c.reply()[0] == 250
    c.close()
    [raw] = find(lmtp_server, "utf8")
    assert raw.startswith("Return-Path: <jörg@example.org>\r\n".encode())
    assert b"with UTF8LMTP" in raw
    assert raw.endswith("Grüße aus Köln\r\n".encode())


def test_size_limits(lmtp_server):
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    code, text = c.cmd(f"MAIL FROM:<s@example.org> SIZE={MAX_SIZE + 1}")
    assert (code, text.split()[0]) == (552, "5.3.4")
    assert c.cmd("MAIL FROM:<s@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(make_message("too big", "x" * 998 + "\r\n") + b"y" * 80 + b"\r\n"
                     + (b"z" * 1000 + b"\r\n") * (MAX_SIZE // 1000)))
    assert [c.reply()[:1] for _ in range(2)] == [(552,), (552,)]
    assert c.cmd("NOOP")[0] == 250          # the session goes on
    c.close()
    assert find(lmtp_server, "too big") == []


def test_fifty_recipients_store_one_blob(lmtp_server):
    names = [f"many{i:02d}" for i in range(50)]

    async def create(store):
        for n in names:
            await store.create_account(n, "x")

    with_store(lmtp_server.data_dir, create)
    before_files = blob_files(lmtp_server.data_dir)
    before_rows = message_rows(lmtp_server.data_dir)
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    c.send(b"MAIL FROM:<s@example.org>\r\n"
           + b"".join(f"RCPT TO:<{n}@example.org>\r\n".encode() for n in names) + b"DATA\r\n")
    replies = [c.reply()[0] for _ in range(52)]
    assert replies == [250] * 51 + [354]
    c.send(dot_stuff(make_message("fifty", "x" * 5000 + "\r\n")))
    assert [c.reply()[0] for _ in names] == [250] * 50
    c.close()
    # One stored copy: one message row (and at most one blob file; the store
    # may keep small messages inline in that row), shared by 50 mailboxes.
    assert len(blob_files(lmtp_server.data_dir) - before_files) <= 1
    added = message_rows(lmtp_server.data_dir) - before_rows
    assert len(added) == 1
    db = sqlite3.connect(lmtp_server.data_dir / "mailbag.sqlite3")
    try:
        refs = db.execute("SELECT count(*) FROM mailbox_messages WHERE message_id = ?",
                          (next(iter(added)),)).fetchone()[0]
    finally:
        db.close()
    assert refs == 50

    async def counts(store):
        per_box = []
        for n in names:
            account = await store.get_account(n)
            box = await store.get_mailbox(account.id, "INBOX")
            per_box.append(box.messages)
        return per_box

    assert with_store(lmtp_server.data_dir, counts) == [1] * 50


def test_quota_at_rcpt_and_at_data(lmtp_server):
    async def setup(store):
        for n in ("quota1", "quota2"):
            await store.create_account(n, "x")
        q1 = await store.get_account("quota1")
        await store.set_quota(q1.id, 3000)

    with_store(lmtp_server.data_dir, setup)
    c = RawLmtp(lmtp_server.lmtp_port)
    c.cmd("LHLO client.test")
    # Declared SIZE beyond the quota: refused at RCPT.
    c.cmd("MAIL FROM:<s@example.org> SIZE=5000")
    code, text = c.cmd("RCPT TO:<quota1@example.org>")
    assert (code, text.split()[0]) == (552, "5.2.2")
    assert c.cmd("RSET")[0] == 250
    # No SIZE: accepted at RCPT, refused at DATA for quota1 alone.
    c.cmd("MAIL FROM:<s@example.org>")
    assert c.cmd("RCPT TO:<quota1@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<quota2@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(make_message("over quota", "q" * 4000 + "\r\n")))
    r1, r2 = c.reply(), c.reply()
    assert (r1[0], r1[1].split()[0]) == (552, "5.2.2")
    assert r2[0] == 250
    # A small one fits; once the mailbox is full RCPT says so.
    c.cmd("MAIL FROM:<s@example.org>")
    assert c.cmd("RCPT TO:<quota1@example.org>")[0] == 250
    c.cmd("DATA")
    c.send(dot_stuff(make_message("fits", "f" * 2500 + "\r\n")))
    assert c.reply()[0] == 250

    async def fill(store):
        q1 = await store.get_account("quota1")
        await store.set_quota(q1.id, await store.quota_usage(q1.id))

    with_store(lmtp_server.data_dir, fill)
    c.cmd("MAIL FROM:<s@example.org>")
    assert c.cmd("RCPT TO:<quota1@example.org>")[0] == 552
    c.close()


def test_plus_addressing(lmtp_server):
    conn = imap(lmtp_server)
    conn.create("lists")
    conn.logout()
    with smtplib.LMTP("127.0.0.1", lmtp_server.lmtp_port) as client:
        client.sendmail("s@example.org", ["alice+lists@example.org"], make_message("plus lists"))
        client.sendmail("s@example.org", ["Alice+Lists@Example.org"], make_message("plus case"))
        client.sendmail("s@example.org", ["alice+nosuch@example.org"], make_message("plus none"))
    assert len(find(lmtp_server, "plus lists", "lists")) == 1
    assert len(find(lmtp_server, "plus case", "lists")) == 1
    assert find(lmtp_server, "plus lists") == []
    [raw] = find(lmtp_server, "plus none")
    assert b"Delivered-To: alice+nosuch@example.org\r\n" in raw


def test_aliases(lmtp_server):
    r = lmtp_server.cli("alias", "add", "Sales@Example.org", "alice")
    assert r.returncode == 0, r.stderr
    r = lmtp_server.cli("alias", "add", "postmaster", "bob")
    assert r.returncode == 0, r.stderr
    assert lmtp_server.cli("alias", "add", "x@example.org", "nosuchuser").returncode == 1
    dup = lmtp_server.cli("alias", "add", "sales@example.org", "bob")
    assert dup.returncode == 1 and "exists" in dup.stderr
    listing = lmtp_server.cli("alias", "list").stdout
    assert "sales@example.org\talice" in listing and "postmaster\tbob" in listing
    with smtplib.LMTP("127.0.0.1", lmtp_server.lmtp_port) as client:
        client.sendmail("s@example.org", ["SALES@example.org"], make_message("to sales"))
        client.sendmail("s@example.org", ["postmaster@any.test"], make_message("to pm"))
    assert len(find(lmtp_server, "to sales")) == 1
    assert len(find(lmtp_server, "to pm", user="bob", password="bob-pw")) == 1
    assert lmtp_server.cli("alias", "del", "sales@example.org").returncode == 0
    assert lmtp_server.cli("alias", "del", "sales@example.org").returncode == 1
    with (smtplib.LMTP("127.0.0.1", lmtp_server.lmtp_port) as client,
          pytest.raises(smtplib.SMTPRecipientsRefused) as exc):
        client.sendmail("s@example.org", ["sales@example.org"], make_message("gone"))
    assert exc.value.recipients["sales@example.org"][0] == 550


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_swaks_protocol_lmtp(lmtp_server, via):
    where = (["--server", "127.0.0.1", "--port", str(lmtp_server.lmtp_port)] if via == "tcp"
             else ["--socket", sock_path(lmtp_server)])
    r = subprocess.run(
        ["swaks", "--protocol", "LMTP", *where, "--to", "alice@example.org",
         "--from", "swaks@example.org", "--header", f"Subject: swaks {via}",
         "--body", "sent by swaks", "--pipeline"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    [raw] = find(lmtp_server, f"swaks {via}")
    assert b"sent by swaks" in raw and raw.startswith(b"Return-Path: <swaks@example.org>")


def test_idle_is_woken_by_an_lmtp_delivery(lmtp_server):
    import socket

    s = socket.create_connection(("127.0.0.1", lmtp_server.imap_port), timeout=30)
    buf = b""

    def until(marker: bytes) -> bytes:
        nonlocal buf
        while marker not in buf:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        out, _, buf = buf.partition(marker)
        return out + marker

    until(b"\r\n")
    s.sendall(b"a LOGIN bob bob-pw\r\n")
    until(b"a OK")
    s.sendall(b"b SELECT INBOX\r\n")
    selected = until(b"b OK")
    exists = int(selected.split(b" EXISTS")[0].rsplit(b"* ", 1)[1])
    s.sendall(b"c IDLE\r\n")
    until(b"+ ")
    with smtplib.LMTP("127.0.0.1", lmtp_server.lmtp_port) as client:
        client.sendmail("s@example.org", ["bob@example.org"], make_message("idle wake"))
    # The socket timeout (30 s) only guards against a hang; no timing is asserted.
    assert f"* {exists + 1} EXISTS".encode() in until(b"EXISTS\r\n")
    s.sendall(b"DONE\r\n")
    until(b"c OK")
    s.close()
