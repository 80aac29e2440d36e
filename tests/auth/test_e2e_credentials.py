"""App passwords (add/list/revoke, a revoked device's open session ends),
the second factor (TOTP appended to the main password, RFC 6238), argon2
rehash when the configured parameters change, and SCRAM secrets made at the
next plain login for accounts that have none - all against the real server,
its CLI and its database."""

from __future__ import annotations

import imaplib
import re
import select
import socket
import sqlite3
import urllib.parse

import pytest
from scram_client import ScramClient

from mailbag.auth import totp
from mailbag.auth.passwords import PasswordHasher
from mailbag.config import Argon2Params


def login(srv, user: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", srv.imap_port)
    try:
        imap.login(user, password)
    except imaplib.IMAP4.error:
        imap.logout()
        raise
    return imap


def refused(srv, user: str, password: str) -> bool:
    try:
        login(srv, user, password).logout()
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e)
        return True
    return False


def db(srv) -> sqlite3.Connection:
    return sqlite3.connect(srv.data_dir / "mailbag.sqlite3", timeout=10)


def add_app_password(srv, user: str, label: str) -> str:
    r = srv.cli("app-password", "add", user, label)
    assert r.returncode == 0, r.stderr
    m = re.search(r": ([a-z2-9]{4}(?:-[a-z2-9]{4}){4})$", r.stdout.splitlines()[0])
    assert m, r.stdout
    return m.group(1)


def wait_closed(sock: socket.socket, limit: float = 30.0) -> bytes:
    """Read until the server closes the connection (bounded, not timed)."""
    seen = b""
    while True:
        ready, _, _ = select.select([sock], [], [], limit)
        if not ready:
            raise AssertionError(f"connection still open; got {seen!r}")
        chunk = sock.recv(4096)
        if not chunk:
            return seen
        seen += chunk


def test_app_password_add_list_login(auth_server) -> None:
    secret = add_app_password(auth_server, "alice", "laptop")
    r = auth_server.cli("app-password", "list", "alice")
    assert "laptop" in r.stdout and "never" in r.stdout
    # Dashes and case do not matter; the main password still works too.
    for typed in (secret, secret.replace("-", "").upper()):
        login(auth_server, "alice", typed).logout()
    login(auth_server, "alice", "alice-pw").logout()
    listing = auth_server.cli("app-password", "list", "alice").stdout
    row = next(line for line in listing.splitlines() if line.startswith("laptop"))
    assert "127.0.0.1" in row and "never" not in row
    # Another account cannot use it.
    assert refused(auth_server, "bob", secret)
    log = auth_server.log_text()
    assert secret not in log and secret.replace("-", "") not in log


def test_app_password_cli_errors(auth_server) -> None:
    add_app_password(auth_server, "carol", "tablet")
    r = auth_server.cli("app-password", "add", "carol", "tablet")
    assert r.returncode == 1 and "already has an app password labelled 'tablet'" in r.stderr
    r = auth_server.cli("app-password", "revoke", "carol", "toaster")
    assert r.returncode == 1 and "no app password labelled 'toaster'" in r.stderr
    r = auth_server.cli("app-password", "add", "nobody", "x")
    assert r.returncode == 1 and "no such user nobody" in r.stderr
    r = auth_server.cli("app-password", "add", "carol", "bad\x01label")
    assert r.returncode == 1 and "control characters" in r.stderr


def test_revoke_refuses_new_logins_and_ends_open_sessions(auth_server) -> None:
    secret = add_app_password(auth_server, "dave", "phone")
    other = add_app_password(auth_server, "dave", "desktop")
    phone = socket.create_connection(("127.0.0.1", auth_server.imap_port), timeout=30)
    phone.recv(4096)
    phone.sendall(f"a1 LOGIN dave {secret}\r\na2 SELECT INBOX\r\na3 IDLE\r\n".encode())
    buf = b""
    while b"+ idling" not in buf:
        chunk = phone.recv(4096)
        assert chunk, buf
        buf += chunk
    desktop = login(auth_server, "dave", other)
    main = login(auth_server, "dave", "dave-pw")

    r = auth_server.cli("app-password", "revoke", "dave", "phone")
    assert r.returncode == 0, r.stderr
    assert refused(auth_server, "dave", secret)
    assert b"* BYE" in wait_closed(phone)
    phone.close()
    # Other devices and the main password's session are untouched.
    assert desktop.noop()[0] == "OK" and main.noop()[0] == "OK"
    desktop.logout()
    main.logout()
    listing = auth_server.cli("app-password", "list", "dave", "--all").stdout
    assert re.search(r"^phone .* revoked ", listing, re.M)
    assert "session-ended" in auth_server.log_text()
    # A new app password may reuse the label of a revoked one.
    add_app_password(auth_server, "dave", "phone")


def test_totp_second_factor(auth_server) -> None:
    r = auth_server.cli("user", "totp", "enroll", "bob")
    assert r.returncode == 0, r.stderr
    uri = r.stdout.splitlines()[0]
    assert uri.startswith("otpauth://totp/mailbag:bob?")
    secret = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]
    app = add_app_password(auth_server, "bob", "phone")
    assert auth_server.cli("user", "second-factor", "bob", "on").returncode == 0

    assert refused(auth_server, "bob", "bob-pw")                     # no code
    assert refused(auth_server, "bob", "wrong-pw" + totp.code_at(secret))
    code = totp.code_at(secret)
    login(auth_server, "bob", "bob-pw" + code).logout()
    assert refused(auth_server, "bob", "bob-pw" + code)              # no replay
    login(auth_server, "bob", app).logout()                          # app passwords as usual
    # SCRAM cannot carry a code: refused for such accounts.
    with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as imap, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.authenticate("SCRAM-SHA-256", ScramClient("bob", "bob-pw").imaplib_callback)
    log = auth_server.log_text()
    assert "reason=second-factor-required" in log and "cred=totp" in log

    assert auth_server.cli("user", "second-factor", "bob", "off").returncode == 0
    login(auth_server, "bob", "bob-pw").logout()


def test_rehash_when_argon2_parameters_change(auth_server) -> None:
    old = PasswordHasher(Argon2Params(time_cost=2, memory_cost=2048, parallelism=2))
    with db(auth_server) as conn:
        conn.execute("UPDATE accounts SET password_hash = ? WHERE name = 'carol'",
                     (old.hash(b"carol-pw"),))
    login(auth_server, "carol", "carol-pw").logout()
    with db(auth_server) as conn:
        new_hash = conn.execute(
            "SELECT password_hash FROM accounts WHERE name = 'carol'").fetchone()[0]
    # The server's config: time_cost 1, memory 1024 KiB, parallelism 1.
    assert "$m=1024,t=1,p=1$" in new_hash
    assert "password-rehashed user=carol" in auth_server.log_text()
    login(auth_server, "carol", "carol-pw").logout()


def test_scram_secrets_made_at_next_plain_login(auth_server) -> None:
    with db(auth_server) as conn:
        conn.execute("UPDATE accounts SET scram_sha256 = NULL WHERE name = 'carol'")
    with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("SCRAM-SHA-256", ScramClient("carol", "carol-pw").imaplib_callback)
    login(auth_server, "carol", "carol-pw").logout()
    with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as imap:
        client = ScramClient("carol", "carol-pw")
        assert imap.authenticate("SCRAM-SHA-256", client.imaplib_callback)[0] == "OK"
    with db(auth_server) as conn:
        stored = conn.execute(
            "SELECT scram_sha256 FROM accounts WHERE name = 'carol'").fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$4096:")


def test_revoke_ends_an_open_pop3_session_without_its_deletions(auth_server) -> None:
    secret = add_app_password(auth_server, "dave", "old-phone")
    c = imaplib.IMAP4("127.0.0.1", auth_server.imap_port, timeout=30)
    c.login("dave", "dave-pw")
    c.append("INBOX", None, None, b"Subject: keep me\r\n\r\nbody\r\n")
    c.select("INBOX")
    typ, data = c.search(None, "ALL")
    before = len(data[0].split())
    pop = socket.create_connection(("127.0.0.1", auth_server.pop3_port), timeout=30)
    assert pop.recv(4096).startswith(b"+OK")
    pop.sendall(f"USER dave\r\nPASS {secret}\r\nDELE 1\r\n".encode())
    buf = b""
    while buf.count(b"+OK") < 3:
        chunk = pop.recv(4096)
        assert chunk, buf
        buf += chunk
    r = auth_server.cli("app-password", "revoke", "dave", "old-phone")
    assert r.returncode == 0, r.stderr
    assert b"-ERR [AUTH] Credential revoked" in wait_closed(pop)
    pop.close()
    # The revoked device's DELE never reached the UPDATE state.
    c.noop()
    typ, data = c.search(None, "ALL")
    assert len(data[0].split()) == before
    c.logout()
