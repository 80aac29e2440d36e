"""No password on an insecure connection (RFC 2595 §4, DESIGN.md rule 8):
with secure_loopback off, USER/PASS and AUTH PLAIN are refused until STLS,
and CAPA offers only STLS for logging in."""

from __future__ import annotations

import base64
import imaplib
import poplib
import shutil
import ssl

import pytest
import testserver
from pop3_support import message


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    srv = testserver.TestServer(tmp_path_factory.mktemp("strict"),
                                top_config="secure_loopback = false")
    srv.write_config()
    srv.add_user("carol", "carol-pw")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_plaintext_login_refused_until_stls(strict):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL("127.0.0.1", strict.imaps_port, ssl_context=ctx, timeout=10)
    c.login("carol", "carol-pw")
    c.append("INBOX", None, None, message(1))
    c.logout()
    p = poplib.POP3("127.0.0.1", strict.pop3_port, timeout=10)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext authentication is disabled"):
        p.user("carol")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        p.pass_("carol-pw")
    token = base64.b64encode(b"\0carol\0carol-pw").decode()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        p._shortcmd(f"AUTH PLAIN {token}")
    p.stls(ctx)
    caps = p.capa()
    assert "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"]
    assert p._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")
    assert p.stat()[0] == 1
    p.quit()


def test_commands_pipelined_before_stls_are_discarded(strict):
    import socket

    with socket.create_connection(("127.0.0.1", strict.pop3_port), timeout=10) as raw:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"STLS\r\nUSER carol\r\n")
        assert f.readline().startswith(b"+OK")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tf = tls.makefile("rb")
        # The clear-text USER was dropped, so PASS has no user to go with.
        tls.sendall(b"PASS carol-pw\r\n")
        assert tf.readline() == b"-ERR Send USER first\r\n"
        tls.close()


def test_large_injection_after_stls_is_not_executed(strict):
    """More clear text after STLS than one socket read takes: none of it may
    be run as if it had come over TLS (it would log the client in here)."""
    import socket

    s = socket.create_connection(("127.0.0.1", strict.pop3_port), timeout=10)
    greeting = b""
    while b"\n" not in greeting:
        greeting += s.recv(1000)
    injected = b"CAPA\r\n" * 20000 + b"USER carol\r\nPASS carol-pw\r\nSTAT\r\n"
    s.sendall(b"STLS\r\n" + injected)
    assert s.recv(1000).startswith(b"+OK")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s)
        t.sendall(b"QUIT\r\n")
        data = b""
        while chunk := t.recv(65536):
            data += chunk
    except (ssl.SSLError, ConnectionError):
        return  # clear text still arriving breaks the handshake: also safe
    assert data == b"+OK Bye\r\n"
