"""POP3 end to end with Python's poplib against the real server: login,
STAT/LIST/UIDL/TOP/RETR/DELE/QUIT, RSET, errors, limits, the lock, \\Seen and
AUTH (RFC 1939, RFC 2449, RFC 5034)."""

from __future__ import annotations

import base64
import poplib
import socket

import pytest
from pop3_support import append_raw, imap, message, new_account, pop, retr_bytes


@pytest.fixture
def account(server):
    """A fresh account whose INBOX holds messages 1..3 (in that order)."""
    user, pw = new_account(server)
    for n in (1, 2, 3):
        append_raw(server, user, pw, message(n, body=f"Body of {n}.\r\n"))
    return user, pw


def test_greeting_capa_and_login(server, account):
    p = pop(server)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert cap in caps, cap
    assert caps["SASL"] == ["PLAIN", "LOGIN"]
    p.user(account[0])
    assert p.pass_(account[1]).startswith(b"+OK")
    # In TRANSACTION state login capabilities are gone.
    caps = p.capa()
    assert "USER" not in caps and "STLS" not in caps and "UIDL" in caps
    p.quit()


def test_stat_list_uidl_retr_top(server, account):
    p = pop(server, *account)
    count, size = p.stat()
    assert count == 3
    _, listing, _ = p.list()
    sizes = dict(map(int, line.split()) for line in listing)
    assert sorted(sizes) == [1, 2, 3] and sum(sizes.values()) == size
    for n in (1, 2, 3):
        data = retr_bytes(p, n)
        assert data == message(n, body=f"Body of {n}.\r\n")
        assert len(data) == sizes[n]
        assert p.list(n) == f"+OK {n} {sizes[n]}".encode()
    _, uidls, _ = p.uidl()
    ids = [line.split()[1] for line in uidls]
    assert len(set(ids)) == 3
    assert p.uidl(2).split()[2] == ids[1]
    _, lines, _ = p.top(1, 0)
    assert lines[-1] == b"" and b"Subject: POP3 test 1" in lines
    assert b"Body of 1." not in lines
    _, lines, _ = p.top(1, 1)
    assert lines[-1] == b"Body of 1."
    p.quit()


def test_dele_rset_and_quit_expunge(server, account):
    user, pw = account
    p = pop(server, user, pw)
    _, before, _ = p.uidl()
    total = p.stat()[1]
    size1 = int(p.list(1).split()[2])
    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (2, total - size1)
    with pytest.raises(poplib.error_proto, match="Message 1 is deleted"):
        p.retr(1)
    with pytest.raises(poplib.error_proto, match="already|deleted"):
        p.dele(1)
    _, listing, _ = p.list()
    assert [int(line.split()[0]) for line in listing] == [2, 3]
    p.rset()
    assert p.stat() == (3, total)
    p.dele(1)
    p.dele(3)
    assert b"2 messages deleted" in p.quit()

    p = pop(server, user, pw)
    assert p.stat()[0] == 1
    _, after, _ = p.uidl()
    # The survivor keeps its unique-id and is renumbered 1.
    assert after == [b"1 " + before[1].split()[1]]
    assert retr_bytes(p, 1) == message(2, body="Body of 2.\r\n")
    p.quit()


def test_dele_without_quit_deletes_nothing(server, account):
    p = pop(server, *account)
    p.dele(1)
    p.dele(2)
    p.close()                                    # connection drops: no UPDATE
    p = pop(server, *account)
    assert p.stat()[0] == 3
    p.quit()


def test_retr_marks_seen_and_top_does_not(server, account):
    user, pw = account
    p = pop(server, user, pw)
    p.retr(2)
    p.top(3, 5)
    p.quit()
    c = imap(server, user, pw)
    c.select("INBOX")
    _, data = c.fetch("1:3", "(FLAGS)")
    flags = [d.decode() for d in data]
    assert "\\Seen" not in flags[0] and "\\Seen" in flags[1] and "\\Seen" not in flags[2]
    c.logout()


def test_retr_marks_seen_even_without_quit(server, account):
    user, pw = account
    p = pop(server, user, pw)
    p.retr(1)
    p.close()
    # The flags are written before the lock is released, so once a new
    # session gets in, they are there.
    while True:
        p = pop(server)
        p.user(user)
        try:
            p.pass_(pw)
            break
        except poplib.error_proto as exc:
            assert b"[IN-USE]" in exc.args[0]
            p.quit()
    p.quit()
    c = imap(server, user, pw)
    c.select("INBOX")
    _, data = c.fetch("1:2", "(FLAGS)")
    assert b"\\Seen" in data[0] and b"\\Seen" not in data[1]
    c.logout()


def test_rset_forgets_seen_marks(server, account):
    user, pw = account
    p = pop(server, user, pw)
    p.retr(1)
    p.rset()
    p.quit()
    c = imap(server, user, pw)
    c.select("INBOX")
    _, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    c.logout()


def test_bare_lf_message_is_sent_with_crlf_and_its_size_matches(server):
    user, pw = new_account(server)
    raw = b"Subject: lf\n\n.starts with a dot\nline two\n..two dots\nno final newline"
    append_raw(server, user, pw, raw)
    p = pop(server, user, pw)
    size = int(p.list(1).split()[2])
    got = retr_bytes(p, 1)
    expected = raw.replace(b"\n", b"\r\n") + b"\r\n"
    assert got == expected
    assert size == len(expected) == p.stat()[1]
    p.quit()


def test_empty_maildrop(server):
    user, pw = new_account(server)
    p = pop(server, user, pw)
    assert p.stat() == (0, 0)
    assert p.list()[1] == [] and p.uidl()[1] == []
    with pytest.raises(poplib.error_proto, match="No message 1"):
        p.retr(1)
    p.quit()


def test_bad_input_gets_clear_errors(server, account):
    p = pop(server)
    with pytest.raises(poplib.error_proto, match="STAT is not valid in the AUTHORIZATION"):
        p.stat()
    with pytest.raises(poplib.error_proto, match="Send USER first"):
        p.pass_("x")
    with pytest.raises(poplib.error_proto, match="Unknown command XYZZY"):
        p._shortcmd("XYZZY")
    with pytest.raises(poplib.error_proto, match="Invalid command syntax"):
        p._shortcmd("12 34")
    p.user(account[0])
    p.pass_(account[1])
    for cmd, pattern in [
        ("RETR", "Usage: RETR message-number"),
        ("RETR x", "Invalid message number"),
        ("RETR -1", "Invalid message number"),
        ("RETR 0", "No message 0"),
        ("RETR 4", "No message 4"),
        ("RETR 99999999999999", "Invalid message number"),
        ("TOP 1", "Usage: TOP message-number lines"),
        ("TOP 1 x", "Invalid line count"),
        ("LIST 1 2", "Usage: LIST"),
        ("STAT 1", "Usage: STAT"),
        ("USER alice", "USER is not valid in the TRANSACTION"),
    ]:
        with pytest.raises(poplib.error_proto, match=pattern):
            p._shortcmd(cmd)
    assert p.noop().startswith(b"+OK")
    p.quit()


def test_long_lines_are_refused_and_the_session_goes_on(server):
    with socket.create_connection(("127.0.0.1", server.pop3_port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"USER " + b"a" * 100_000 + b"\r\nCAPA\r\n")
        assert f.readline() == b"-ERR Line too long (limit 4096 octets)\r\n"
        assert f.readline().startswith(b"+OK")     # CAPA still answered


def test_too_many_bad_commands_close_the_connection(server):
    with socket.create_connection(("127.0.0.1", server.pop3_port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"BOGUS\r\n" * 25)
        lines = f.readlines()
    assert len(lines) == 21 and b"Too many bad commands" in lines[-1]


def test_pipelined_commands(server, account):
    user, pw = account
    with socket.create_connection(("127.0.0.1", server.pop3_port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f"USER {user}\r\nPASS {pw}\r\nSTAT\r\nLIST 2\r\nQUIT\r\n".encode())
        lines = f.readlines()
    assert [ln[:3] for ln in lines] == [b"+OK"] * 5
    assert lines[2].startswith(b"+OK 3 ")


def test_wrong_password_is_auth_error(server, account):
    p = pop(server)
    p.user(account[0])
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.user("nobody-here")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.quit()


def test_second_session_is_in_use(server, account):
    first = pop(server, *account)
    second = pop(server)
    second.user(account[0])
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(account[1])
    first.quit()
    # The lock is released with the first session; the second may retry.
    second.user(account[0])
    assert second.pass_(account[1]).startswith(b"+OK")
    second.quit()


def _auth(p: poplib.POP3, line: str) -> bytes:
    return p._shortcmd(line)


def test_auth_plain_with_initial_response(server, account):
    user, pw = account
    p = pop(server)
    token = base64.b64encode(f"\0{user}\0{pw}".encode()).decode()
    assert _auth(p, f"AUTH PLAIN {token}").startswith(b"+OK")
    assert p.stat()[0] == 3
    p.quit()


def test_auth_login_exchange_and_cancel(server, account):
    user, pw = account
    p = pop(server)
    p._putcmd("AUTH LOGIN")
    assert p._getline()[0] == b"+ " + base64.b64encode(b"Username:")
    p._putcmd(base64.b64encode(user.encode()).decode())
    assert p._getline()[0] == b"+ " + base64.b64encode(b"Password:")
    p._putcmd(base64.b64encode(pw.encode()).decode())
    assert p._getresp().startswith(b"+OK")
    p.quit()

    p = pop(server)
    p._putcmd("AUTH PLAIN")
    assert p._getline()[0] == b"+ "
    p._putcmd("*")
    with pytest.raises(poplib.error_proto, match="cancelled"):
        p._getresp()
    with pytest.raises(poplib.error_proto, match="Invalid base64"):
        _auth(p, "AUTH PLAIN !!!")
    with pytest.raises(poplib.error_proto, match="Unsupported authentication mechanism"):
        _auth(p, "AUTH CRAM-MD5")
    bad = base64.b64encode(f"\0{user}\0nope".encode()).decode()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        _auth(p, f"AUTH PLAIN {bad}")
    # Legacy bare AUTH lists the mechanisms.
    p._putcmd("AUTH")
    resp, lines, _ = p._getlongresp()
    assert lines == [b"PLAIN", b"LOGIN"]
    p.quit()


def test_stls_on_the_plain_port(server, account):
    import ssl

    p = pop(server)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p.stls(ctx)
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto, match="STLS is not valid|already"):
        p._shortcmd("STLS")
    p.user(account[0])
    p.pass_(account[1])
    assert p.stat()[0] == 3
    p.quit()


def test_implicit_tls_port(server, account):
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p = poplib.POP3_SSL("127.0.0.1", server.pop3s_port, context=ctx, timeout=10)
    assert "STLS" not in p.capa()
    p.user(account[0])
    p.pass_(account[1])
    assert retr_bytes(p, 3) == message(3, body="Body of 3.\r\n")
    p.quit()
