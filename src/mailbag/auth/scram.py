"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, server side, sans-IO.

RFC 5802 (SCRAM: §3 algorithm, §5 exchange, §6 channel binding, §7 syntax),
RFC 7677 (the SHA-256 variant), RFC 9266 (``tls-exporter`` channel binding,
the only type -PLUS accepts) and RFC 5803 (the stored form of the secrets,
``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>``).

The server keeps StoredKey and ServerKey, never the password: they are made
when the password is set (``make_credential``). The exchange::

    start(client-first)   -> NeedScramCredential(authcid)
    provide(cred, known)  -> Challenge(server-first)
    step(client-final)    -> Challenge(server-final "v=...") | Failed
    step(b"")             -> Verified(authcid)

The server signature is sent as a last challenge and the client answers it
with an empty response, as IMAP (RFC 9051 §6.2.2) and POP3 (RFC 5034 §4)
carry "additional data with success". Unknown users get a credential with a
salt derived from a per-process key, so the exchange looks the same for them
until the proof fails (no account enumeration).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Final

from mailbag.auth.sasl import (
    Challenge,
    Failed,
    NeedScramCredential,
    SaslMechanism,
    SaslStep,
    Verified,
)
from mailbag.auth.saslprep import SaslprepError, saslprep

MIN_ITERATIONS: Final = 4096           # RFC 7677 §4
SALT_BYTES: Final = 16
NONCE_BYTES: Final = 18
CB_TYPE: Final = "tls-exporter"
_PREFIX: Final = "SCRAM-SHA-256$"
_PRINTABLE_NO_COMMA = re.compile(r"[\x21-\x2b\x2d-\x7e]+\Z")   # RFC 5802 §7 "printable"


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the server stores for one password (RFC 5802 §3)."""

    iterations: int
    salt: bytes
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def to_string(self) -> str:
        """RFC 5803 form."""
        b64 = base64.b64encode
        return (
            f"{_PREFIX}{self.iterations}:{b64(self.salt).decode()}"
            f"${b64(self.stored_key).decode()}:{b64(self.server_key).decode()}"
        )

    @classmethod
    def from_string(cls, text: str) -> ScramCredential:
        """Parse the RFC 5803 form; ValueError when it is not one."""
        if not text.startswith(_PREFIX):
            raise ValueError("not a SCRAM-SHA-256 credential")
        try:
            head, keys = text[len(_PREFIX):].split("$")
            iterations, salt = head.split(":")
            stored, server = keys.split(":")
            cred = cls(
                int(iterations),
                base64.b64decode(salt, validate=True),
                base64.b64decode(stored, validate=True),
                base64.b64decode(server, validate=True),
            )
        except (ValueError, binascii.Error):
            raise ValueError("malformed SCRAM-SHA-256 credential") from None
        if cred.iterations < 1 or len(cred.stored_key) != 32 or len(cred.server_key) != 32:
            raise ValueError("malformed SCRAM-SHA-256 credential")
        return cred


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.digest(key, msg, "sha256")


def salted_password(password: bytes, salt: bytes, iterations: int) -> bytes:
    """Hi() of RFC 5802 §2.2 is PBKDF2-HMAC with one block of output."""
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations)


def normalize_password(password: bytes) -> bytes:
    """SASLprep of a UTF-8 password (RFC 5802 §2.2); ValueError if it cannot be."""
    try:
        return saslprep(password.decode("utf-8")).encode("utf-8")
    except (UnicodeDecodeError, SaslprepError) as e:
        raise ValueError(f"password cannot be prepared for SCRAM: {e}") from None


def make_credential(
    password: bytes, iterations: int = MIN_ITERATIONS, salt: bytes | None = None
) -> ScramCredential:
    """Derive the stored secrets from ``password`` (ValueError: SASLprep failed)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    salted = salted_password(normalize_password(password), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return ScramCredential(
        iterations, salt, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")
    )


# Unknown users: a stable fake salt for the life of the process.
_FAKE_KEY: Final = os.urandom(32)


def fake_credential(authcid: str, iterations: int) -> ScramCredential:
    salt = _hmac(_FAKE_KEY, b"salt:" + authcid.encode())[:SALT_BYTES]
    return ScramCredential(iterations, salt, os.urandom(32), os.urandom(32))


def _saslname(raw: str) -> str | None:
    """Decode =2C and =3D (RFC 5802 §5.1); None when another "=" appears."""
    out = raw.replace("=2C", ",").replace("=3D", "=")
    if "=" in raw.replace("=2C", "").replace("=3D", ""):
        return None
    return out


class ScramMechanism(SaslMechanism):
    """One SCRAM-SHA-256(-PLUS) exchange.

    ``channel_binding`` is the tls-exporter value of this connection (only for
    -PLUS); ``plus_offered`` says the server advertised -PLUS, so a client
    that says "y" (it could bind but thinks we cannot) is being downgraded
    (RFC 5802 §6).
    """

    name = "SCRAM-SHA-256"

    def __init__(
        self,
        *,
        plus: bool = False,
        channel_binding: bytes | None = None,
        plus_offered: bool = False,
        server_nonce: str | None = None,
    ) -> None:
        super().__init__()
        if plus and channel_binding is None:
            raise ValueError("SCRAM-SHA-256-PLUS needs the channel binding data")
        self.plus = plus
        self._cb_data = channel_binding
        self._plus_offered = plus_offered
        self._server_nonce = server_nonce or base64.b64encode(
            secrets.token_bytes(NONCE_BYTES)).decode()
        self._state = "start"
        self._gs2_header = b""
        self._client_first_bare = ""
        self._nonce = ""
        self._server_first = ""
        self._authcid = ""
        self._cred: ScramCredential | None = None
        self._known = False
        self.server_signature = b""

    # -- client-first

    def start(self, initial: bytes | None) -> SaslStep:
        if self._state != "start":
            return self._finish(Failed("already-started"))
        if initial is None or initial == b"":
            # RFC 4422 §5: SCRAM is client-first; ask for the message.
            self._state = "want-first"
            return Challenge(b"")
        return self._client_first(initial)

    def step(self, response: bytes) -> SaslStep:
        if self._finished:
            return self._finish(Failed("unexpected-response"))
        if self._state == "want-first":
            return self._client_first(response)
        if self._state == "want-final":
            return self._client_final(response)
        if self._state == "sent-final":
            # The client acknowledges the server signature with an empty response.
            if response:
                return self._finish(Failed("unexpected-response"))
            self._finished = True
            return Verified(self._authcid)
        return self._finish(Failed("unexpected-response"))

    def _client_first(self, message: bytes) -> SaslStep:
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            return self._finish(Failed("scram-not-utf8"))
        parts = text.split(",", 2)
        if len(parts) != 3:
            return self._finish(Failed("scram-malformed-first"))
        cbflag, authzid, bare = parts
        if cbflag.startswith("p="):
            if not self.plus:
                # The client wants binding but chose the non-PLUS mechanism.
                return self._finish(Failed("scram-cb-without-plus"))
            if cbflag[2:] != CB_TYPE:
                return self._finish(Failed("scram-unsupported-cb-type"))
        elif cbflag in ("n", "y"):
            if self.plus:
                return self._finish(Failed("scram-plus-without-cb"))
            if cbflag == "y" and self._plus_offered:
                return self._finish(Failed("scram-downgrade"))
        else:
            return self._finish(Failed("scram-malformed-first"))
        if authzid and not authzid.startswith("a="):
            return self._finish(Failed("scram-malformed-first"))
        attrs = bare.split(",")
        if len(attrs) < 2 or attrs[0].startswith("m="):
            return self._finish(Failed("scram-extensions-not-supported"))
        if not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            return self._finish(Failed("scram-malformed-first"))
        user = _saslname(attrs[0][2:])
        nonce = attrs[1][2:]
        if not user or not _PRINTABLE_NO_COMMA.match(nonce):
            return self._finish(Failed("scram-malformed-first"))
        if authzid:
            # Acting as another user is not supported (as for PLAIN).
            az = _saslname(authzid[2:])
            if az is None or az.lower() != user.lower():
                return self._finish(Failed("authzid-not-permitted"))
        self._gs2_header = f"{cbflag},{authzid},".encode()
        self._client_first_bare = bare
        self._nonce = nonce + self._server_nonce
        self._authcid = user
        self._state = "want-cred"
        return NeedScramCredential(user)

    # -- server-first

    def provide(self, credential: ScramCredential, known: bool) -> SaslStep:
        """The stored credential of the user (or ``fake_credential`` and
        ``known=False``): returns the server-first challenge."""
        if self._state != "want-cred":
            return self._finish(Failed("unexpected-credential"))
        self._cred = credential
        self._known = known
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self._state = "want-final"
        return Challenge(self._server_first.encode())

    # -- client-final

    def _client_final(self, message: bytes) -> SaslStep:
        assert self._cred is not None
        try:
            text = message.decode("ascii")
        except UnicodeDecodeError:
            return self._finish(Failed("scram-malformed-final"))
        without_proof, sep, proof_attr = text.rpartition(",")
        attrs = without_proof.split(",")
        if (not sep or len(attrs) < 2 or not attrs[0].startswith("c=")
                or not attrs[1].startswith("r=") or not proof_attr.startswith("p=")):
            return self._finish(Failed("scram-malformed-final"))
        try:
            cbind = base64.b64decode(attrs[0][2:], validate=True)
            proof = base64.b64decode(proof_attr[2:], validate=True)
        except (binascii.Error, ValueError):
            return self._finish(Failed("scram-malformed-final"))
        expected_cb = self._gs2_header + (self._cb_data if self.plus and self._cb_data else b"")
        if not hmac.compare_digest(cbind, expected_cb):
            return self._finish(Failed("scram-channel-bindings-dont-match"))
        if attrs[1][2:] != self._nonce:
            return self._finish(Failed("scram-nonce-mismatch"))
        if len(proof) != 32:
            return self._finish(Failed("scram-invalid-proof"))
        auth_message = (
            f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        )
        client_signature = _hmac(self._cred.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        ok = hmac.compare_digest(hashlib.sha256(client_key).digest(), self._cred.stored_key)
        if not self._known:
            return self._finish(Failed("unknown-user"))
        if not ok:
            return self._finish(Failed("bad-password"))
        self.server_signature = _hmac(self._cred.server_key, auth_message)
        self._state = "sent-final"
        return Challenge(b"v=" + base64.b64encode(self.server_signature))
