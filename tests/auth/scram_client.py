"""A SCRAM-SHA-256(-PLUS) client written from RFC 5802 §3/§5 and checked
against the RFC 7677 §3 example, independent of the server's code; used by
the tests as the client half of real exchanges (imaplib's authenticate)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


class ScramClient:
    def __init__(
        self,
        user: str,
        password: str,
        *,
        nonce: str | None = None,
        cb_name: str | None = None,       # "tls-exporter" for -PLUS
        cb_data: bytes = b"",
        cbflag: str | None = None,        # override ("y"/"n") for downgrade tests
    ) -> None:
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode("utf-8")
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        flag = cbflag or (f"p={cb_name}" if cb_name else "n")
        self.gs2_header = f"{flag},,"
        self.cb_data = cb_data if flag.startswith("p=") else b""
        self.client_first_bare = f"n={self.user},r={self.nonce}"
        self.server_signature = b""
        self.verified = False
        self.step = 0

    def first(self) -> bytes:
        return (self.gs2_header + self.client_first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(a.split("=", 1) for a in text.split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.nonce), "server nonce must extend ours"
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        cbind = base64.b64encode(self.gs2_header.encode() + self.cb_data).decode()
        without_proof = f"c={cbind},r={nonce}"
        auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check_server_final(self, server_final: bytes) -> None:
        expected = b"v=" + base64.b64encode(self.server_signature)
        assert server_final == expected, f"server signature mismatch: {server_final!r}"
        self.verified = True

    def imaplib_callback(self, challenge: bytes) -> bytes:
        """For imaplib.IMAP4.authenticate: called with each decoded challenge."""
        self.step += 1
        if self.step == 1:
            return self.first()
        if self.step == 2:
            return self.final(challenge)
        self.check_server_final(challenge)
        return b""
