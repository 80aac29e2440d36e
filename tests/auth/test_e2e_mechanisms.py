"""AUTHENTICATE with SCRAM-SHA-256, SCRAM-SHA-256-PLUS (tls-exporter, RFC
9266), OAUTHBEARER (RFC 7628) and XOAUTH2 against the real server, driven by
imaplib, imapclient and a raw socket (SASL-IR, RFC 4959; cancellation)."""

from __future__ import annotations

import base64
import imaplib
import json
import socket
import ssl
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from jwt_support import Provider
from scram_client import ScramClient

from mailbag.auth.channel_binding import tls_exporter


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def caps(imap: imaplib.IMAP4) -> set[str]:
    typ, data = imap.capability()
    assert typ == "OK"
    return set(data[0].decode().split())


def test_capabilities_list_the_mechanisms(auth_server) -> None:
    with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as plain:
        c = caps(plain)
        assert {"AUTH=SCRAM-SHA-256", "AUTH=OAUTHBEARER", "AUTH=XOAUTH2", "AUTH=PLAIN"} <= c
        # Loopback counts as secure, but there is no TLS to bind to.
        assert "AUTH=SCRAM-SHA-256-PLUS" not in c
    with imaplib.IMAP4_SSL("127.0.0.1", auth_server.imaps_port, ssl_context=tls_context()) as tls:
        assert "AUTH=SCRAM-SHA-256-PLUS" in caps(tls)


def test_scram_sha256_with_imaplib(auth_server) -> None:
    with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as imap:
        client = ScramClient("alice", "alice-pw")
        typ, _ = imap.authenticate("SCRAM-SHA-256", client.imaplib_callback)
        assert typ == "OK" and imap.state == "AUTH"
        assert client.verified, "the server proved it knows the password"
        assert imap.select("INBOX")[0] == "OK"


def test_scram_wrong_password_and_unknown_user(auth_server) -> None:
    for user, password in (("alice", "nope"), ("nobody", "x")):
        with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as imap, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.authenticate("SCRAM-SHA-256", ScramClient(user, password).imaplib_callback)


def test_scram_plus_over_implicit_tls(auth_server) -> None:
    with imaplib.IMAP4_SSL("127.0.0.1", auth_server.imaps_port, ssl_context=tls_context()) as imap:
        cb = tls_exporter(imap.sock)
        assert cb is not None and len(cb) == 32
        client = ScramClient("alice", "alice-pw", cb_name="tls-exporter", cb_data=cb)
        typ, _ = imap.authenticate("SCRAM-SHA-256-PLUS", client.imaplib_callback)
        assert typ == "OK" and client.verified


def test_scram_plus_after_starttls(auth_server) -> None:
    with imaplib.IMAP4("127.0.0.1", auth_server.imap_port) as imap:
        imap.starttls(tls_context())
        assert "AUTH=SCRAM-SHA-256-PLUS" in caps(imap)
        cb = tls_exporter(imap.sock)
        assert cb is not None
        client = ScramClient("bob", "bob-pw", cb_name="tls-exporter", cb_data=cb)
        assert imap.authenticate("SCRAM-SHA-256-PLUS", client.imaplib_callback)[0] == "OK"


def test_scram_plus_channel_binding_mismatch_is_refused(auth_server) -> None:
    # A man in the middle terminates TLS itself: the client's exporter value
    # (here: the one of another connection) differs from the server's.
    with imaplib.IMAP4_SSL("127.0.0.1", auth_server.imaps_port, ssl_context=tls_context()) as other:
        foreign = tls_exporter(other.sock)
    with imaplib.IMAP4_SSL("127.0.0.1", auth_server.imaps_port, ssl_context=tls_context()) as imap:
        assert foreign is not None and foreign != tls_exporter(imap.sock)
        client = ScramClient("alice", "alice-pw", cb_name="tls-exporter", cb_data=foreign)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.authenticate("SCRAM-SHA-256-PLUS", client.imaplib_callback)
    assert "reason=scram-channel-bindings-dont-match" in auth_server.log_text()


def test_scram_downgrade_over_tls_is_refused(auth_server) -> None:
    # "y": the client could bind but believes the server cannot; the server
    # did offer -PLUS, so someone removed it from the capability list.
    with imaplib.IMAP4_SSL("127.0.0.1", auth_server.imaps_port, ssl_context=tls_context()) as imap:
        client = ScramClient("alice", "alice-pw", cbflag="y")
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.authenticate("SCRAM-SHA-256", client.imaplib_callback)


class Raw:
    """A line-level client, to see exact server bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        assert self.line().startswith(b"* OK")

    def line(self) -> bytes:
        return self.file.readline().rstrip(b"\r\n")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data + b"\r\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_scram_with_sasl_ir_on_the_wire(auth_server) -> None:
    raw = Raw(auth_server.imap_port)
    try:
        client = ScramClient("carol", "carol-pw")
        raw.send(b"a1 AUTHENTICATE SCRAM-SHA-256 " + b64(client.first()))
        server_first = raw.line()
        assert server_first.startswith(b"+ ")
        raw.send(b64(client.final(base64.b64decode(server_first[2:]))))
        server_final = raw.line()
        client.check_server_final(base64.b64decode(server_final[2:]))
        raw.send(b"")
        assert raw.line().startswith(b"a1 OK [CAPABILITY ")
    finally:
        raw.close()


def test_cancel_with_star_is_bad(auth_server) -> None:
    raw = Raw(auth_server.imap_port)
    try:
        raw.send(b"a1 AUTHENTICATE SCRAM-SHA-256")
        assert raw.line() == b"+ "
        raw.send(b"*")
        assert raw.line().startswith(b"a1 BAD")
        # The connection lives on and can still log in.
        raw.send(b"a2 LOGIN alice alice-pw")
        assert raw.line().startswith(b"a2 OK")
    finally:
        raw.close()


def imapclient_tls(auth_server) -> IMAPClient:
    return IMAPClient("127.0.0.1", port=auth_server.imaps_port, ssl=True,
                      ssl_context=tls_context())


def test_xoauth2_with_imapclient(auth_server, idp: Provider) -> None:
    with imapclient_tls(auth_server) as c:
        c.oauth2_login("alice@example.org", idp.token("RS256"))
        assert c.select_folder("INBOX")[b"UIDVALIDITY"]


def test_oauthbearer_with_imapclient(auth_server, idp: Provider) -> None:
    with imapclient_tls(auth_server) as c:
        c.oauthbearer_login("alice@example.org", idp.token("ES256"))
        assert c.list_folders()


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"iss": "https://evil.example/"}, "unknown-issuer"),
    ({"aud": "another-service"}, "wrong-audience"),
    ({"email": "bob@example.org"}, "authzid-mismatch"),
])
def test_bad_tokens_are_refused(auth_server, idp: Provider, overrides, reason) -> None:
    with imapclient_tls(auth_server) as c, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        c.oauth2_login("alice@example.org", idp.token(**overrides))
    assert f"reason={reason}" in auth_server.log_text()


def test_wrongly_signed_token_is_refused(auth_server) -> None:
    impostor = Provider()   # same issuer and key ids, other keys
    with imapclient_tls(auth_server) as c, pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        c.oauthbearer_login("alice@example.org", impostor.token())
    assert "reason=bad-signature" in auth_server.log_text()


def test_oauthbearer_error_challenge_on_the_wire(auth_server, idp: Provider) -> None:
    raw = Raw(auth_server.imap_port)
    try:
        msg = b"n,a=alice@example.org,\x01auth=Bearer " + idp.token(aud="x").encode() + b"\x01\x01"
        raw.send(b"a1 AUTHENTICATE OAUTHBEARER " + b64(msg))
        challenge = raw.line()
        assert challenge.startswith(b"+ ")
        status = json.loads(base64.b64decode(challenge[2:]))
        assert status["status"] == "invalid_token"
        raw.send(b64(b"\x01"))          # RFC 7628 §3.2.3 dummy response
        assert raw.line().startswith(b"a1 NO [AUTHENTICATIONFAILED]")
    finally:
        raw.close()
