"""The real server driven with the standard library's imaplib (IMAP4rev1)."""

from __future__ import annotations

import imaplib
import socket
import subprocess
import sys
import threading
import time

import pytest

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\n"
       b"Subject: hello there\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <m1@example.org>\r\n\r\nBody line one\r\nBody line two\r\n")


def connect(server, user="alice", password="alice-pw") -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    c.login(user, password)
    return c


def test_login_rejects_bad_password(server):
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login("alice", "wrong")
    c.logout()


def test_default_mailboxes_with_special_use(server):
    c = connect(server)
    typ, data = c.list()
    assert typ == "OK"
    lines = b"\n".join(data)
    for name, use in [(b"INBOX", None), (b"Drafts", b"\\Drafts"), (b"Sent", b"\\Sent"),
                      (b"Trash", b"\\Trash"), (b"Junk", b"\\Junk"), (b"Archive", b"\\Archive")]:
        assert name in lines
        if use:
            assert use in lines
    c.logout()


def test_rev1_session_append_fetch_store_copy_expunge(server):
    c = connect(server)
    c.create("Work")
    typ, data = c.append("Work", r"(\Flagged)", None, MSG)
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = c.select("Work")
    assert typ == "OK" and data == [b"1"]
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1] == b"Subject: hello there\r\n\r\n"
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"\\Seen" not in data[0]
    typ, data = c.fetch("1", "(RFC822)")
    assert data[0][1] == MSG
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = c.fetch("1", "(ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)")
    assert b'"hello there"' in data[0] and b"RFC822.SIZE %d" % len(MSG) in data[0]
    typ, data = c.store("1", "+FLAGS", r"(\Deleted $Important)")
    assert typ == "OK" and b"$Important" in data[0]
    typ, data = c.copy("1", "INBOX")
    assert typ == "OK"
    typ, data = c.expunge()
    assert data == [b"1"]
    typ, data = c.select("Work")
    assert data == [b"0"]
    typ, data = c.select("INBOX")
    typ, data = c.search(None, "KEYWORD", "$Important")
    assert data[0].split() != []
    c.logout()


def test_two_sessions_see_each_others_changes(server):
    a = connect(server)
    b = connect(server)
    a.create("Shared")
    a.select("Shared")
    b.select("Shared")
    b.append("Shared", None, None, MSG)
    a.untagged_responses.clear()  # imaplib keeps SELECT's EXISTS 0 around
    a.noop()
    assert a.untagged_responses.get("EXISTS") == [b"1"]
    b.store("1", "+FLAGS", r"(\Answered)")
    a.noop()
    fetches = a.untagged_responses.pop("FETCH", [])
    assert any(b"\\Answered" in f for f in fetches)
    b.store("1", "+FLAGS", r"(\Deleted)")
    b.expunge()
    a.noop()
    assert a.untagged_responses.get("EXPUNGE") == [b"1"]
    a.logout()
    b.logout()


def test_idle_is_woken_by_append(server):
    a = connect(server)
    a.create("Idle")
    a.select("Idle")
    sock = a.socket()
    a.send(b"I1 IDLE\r\n")
    assert a.readline().startswith(b"+")
    sent_at = []

    def deliver():
        time.sleep(0.2)
        b = connect(server)
        sent_at.append(time.monotonic())
        b.append("Idle", None, None, MSG)
        b.logout()

    t = threading.Thread(target=deliver)
    t.start()
    sock.settimeout(10)
    line = a.readline()
    woke = time.monotonic()
    t.join()
    assert line == b"* 1 EXISTS\r\n"
    assert woke - sent_at[0] < 5  # pushed, not polled (latency is measured in bench/)
    a.send(b"DONE\r\n")
    assert a.readline().startswith(b"I1 OK")
    a.logout()


def test_idle_is_woken_by_another_process_writing_the_store(server):
    """`mailbag deliver` or `mailbag import` may write the database from
    another process while the server runs: IDLE still hears of it."""
    a = connect(server)
    a.create("Outside")
    a.select("Outside")
    sock = a.socket()
    a.send(b"I1 IDLE\r\n")
    assert a.readline().startswith(b"+")
    script = (
        "import asyncio, sys\n"
        "from mailbag.store.api import AppendItem\n"
        "from mailbag.store.sqlite import SqliteStore\n"
        "async def main():\n"
        "    async with SqliteStore(sys.argv[1]) as s:\n"
        "        acc = await s.get_account('alice')\n"
        "        box = await s.get_mailbox(acc.id, 'Outside')\n"
        "        await s.append(box.id, [AppendItem(sys.stdin.buffer.read())])\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(server.data_dir)], input=MSG, check=True)
    sock.settimeout(30)
    assert a.readline() == b"* 1 EXISTS\r\n"
    a.send(b"DONE\r\n")
    assert a.readline().startswith(b"I1 OK")
    typ, data = a.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"hello there" in data[0][1]
    a.logout()


def test_expunge_not_sent_during_fetch_by_sequence_number(server):
    a = connect(server)
    b = connect(server)
    a.create("Rules")
    for _ in range(3):
        a.append("Rules", None, None, MSG)
    a.select("Rules")
    b.select("Rules")
    b.store("1", "+FLAGS", r"(\Deleted)")
    b.expunge()
    a.untagged_responses.clear()
    typ, data = a.fetch("1:3", "(FLAGS)")
    assert "EXPUNGE" not in a.untagged_responses
    typ, data = a.uid("FETCH", "1:*", "(FLAGS)")
    assert a.untagged_responses.get("EXPUNGE") == [b"1"]
    a.logout()
    b.logout()


def test_bad_commands_get_tagged_answers(server):
    s = socket.create_connection(("127.0.0.1", server.imap_port), timeout=10)
    f = s.makefile("rwb")
    f.readline()
    for cmd, expect in [(b"a1 FROB\r\n", b"a1 BAD"), (b"a2 SELECT INBOX\r\n", b"a2 BAD"),
                        (b"a3 LOGIN\r\n", b"a3 BAD"), (b"a4 FETCH 1 (FLAGS\r\n", b"a4 BAD")]:
        f.write(cmd)
        f.flush()
        assert f.readline().startswith(expect)
    f.write(b"a5 LOGOUT\r\n")
    f.flush()
    assert f.readline().startswith(b"* BYE")
    s.close()


def test_recent_is_seen_by_one_session_only(server):
    a = connect(server)
    a.create("Recent")
    a.append("Recent", None, None, MSG)
    # EXAMINE shows the message as recent without taking it from SELECT.
    a.select("Recent", readonly=True)
    assert a.untagged_responses.get("RECENT")[-1] == b"1"
    a.close()
    typ, data = a.status("Recent", "(RECENT)")
    assert b"RECENT 1" in data[0]
    a.untagged_responses.clear()
    a.select("Recent")
    assert a.untagged_responses.get("RECENT")[-1] == b"1"
    typ, data = a.status("Recent", "(RECENT)")
    assert b"RECENT 0" in data[0]
    # A new arrival is recent for the session that has the mailbox selected...
    b = connect(server)
    b.append("Recent", None, None, MSG)
    a.noop()
    typ, data = a.fetch("2", "(FLAGS)")
    assert b"\\Recent" in data[0]
    # ...and for nobody else.
    b.select("Recent")
    assert b.untagged_responses.get("RECENT")[-1] == b"0"
    a.logout()
    b.logout()


def test_move_within_the_same_mailbox_gives_new_uid(server):
    c = connect(server)
    c.create("Self")
    c.append("Self", None, None, MSG)
    c.select("Self")
    typ, data = c.uid("MOVE", "1", "Self")
    assert typ == "OK"
    typ, data = c.uid("SEARCH", "ALL")
    assert data[0] == b"2"
    c.logout()
