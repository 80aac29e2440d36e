"""OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's older equivalent), sans-IO,
and the validation of the bearer tokens they carry: signed JWT access tokens
(RFC 9068 profile; RFC 7519 claims) from the issuers in ``[oauth]``, checked
with PyJWT against each issuer's JSON Web Key Set file.

Messages (RFC 7628 §3.1; kvsep is %x01)::

    OAUTHBEARER  n,a=alice@example.org,^Ahost=...^Aport=...^Aauth=Bearer <token>^A^A
    XOAUTH2      user=alice@example.org^Aauth=Bearer <token>^A^A

A rejected token gets the RFC 7628 §3.2.2 error challenge (a JSON status
object); whatever the client answers (RFC 7628 says a single %x01; imaplib
sends its message again), the exchange then fails and the protocol answers
NO [AUTHENTICATIONFAILED].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from mailbag.auth.sasl import Challenge, Failed, SaslMechanism, SaslStep, VerifyToken
from mailbag.auth.usernames import InvalidUsername, validate_username
from mailbag.config import OAuthConfig, OAuthIssuer

MAX_TOKEN = 16 * 1024


def _split_kv(text: str) -> dict[str, str] | None:
    """key=value pairs separated by %x01, ending in %x01%x01."""
    if not text.endswith("\x01\x01"):
        return None
    pairs: dict[str, str] = {}
    for item in text[:-2].split("\x01"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            return None
        pairs[key] = value
    return pairs


def _bearer(pairs: dict[str, str]) -> str | None:
    scheme, _, token = pairs.get("auth", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        return None
    return token


class OAuthMechanism(SaslMechanism):
    """Shared flow: one client message, then either success or the error
    challenge followed by failure."""

    def __init__(self) -> None:
        super().__init__()
        self._state = "start"
        self._reason = ""

    def start(self, initial: bytes | None) -> SaslStep:
        if self._state != "start":
            return self._finish(Failed("already-started"))
        if not initial:
            self._state = "want-message"
            return Challenge(b"")
        return self._message(initial)

    def step(self, response: bytes) -> SaslStep:
        if self._finished:
            return self._finish(Failed("unexpected-response"))
        if self._state == "want-message":
            return self._message(response)
        if self._state == "rejected":
            return self._finish(Failed(self._reason))
        return self._finish(Failed("unexpected-response"))

    def _message(self, raw: bytes) -> SaslStep:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._finish(Failed("oauth-not-utf8"))
        parsed = self._parse(text)
        if isinstance(parsed, Failed):
            return self._finish(parsed)
        self._state = "verifying"
        return parsed

    def _parse(self, text: str) -> VerifyToken | Failed:
        raise NotImplementedError

    def rejected(self, reason: str, scope: str = "") -> SaslStep:
        """The token was refused: the error challenge (then failure)."""
        self._state = "rejected"
        self._reason = reason
        return Challenge(self.error_body(scope))

    def error_body(self, scope: str) -> bytes:
        raise NotImplementedError


class OAuthBearerMechanism(OAuthMechanism):
    name = "OAUTHBEARER"

    def _parse(self, text: str) -> VerifyToken | Failed:
        gs2, sep, rest = text.partition("\x01")
        if not sep:
            return Failed("oauth-malformed")
        parts = gs2.split(",")
        if len(parts) != 3 or parts[2] != "":
            return Failed("oauth-malformed")
        cbflag, authzid = parts[0], parts[1]
        if cbflag not in ("n", "y"):
            # RFC 7628 §3.1: OAUTHBEARER has no channel binding.
            return Failed("oauth-channel-binding-not-supported")
        user: str | None = None
        if authzid:
            if not authzid.startswith("a="):
                return Failed("oauth-malformed")
            user = authzid[2:].replace("=2C", ",").replace("=3D", "=")
        pairs = _split_kv("\x01" + rest)
        if pairs is None:
            return Failed("oauth-malformed")
        token = _bearer(pairs)
        if token is None:
            return Failed("oauth-no-bearer-token")
        return VerifyToken(token, user)

    def error_body(self, scope: str) -> bytes:
        body: dict[str, str] = {"status": "invalid_token", "schemes": "bearer"}
        if scope:
            body["scope"] = scope
        return json.dumps(body, separators=(",", ":")).encode()


class XOAuth2Mechanism(OAuthMechanism):
    name = "XOAUTH2"

    def _parse(self, text: str) -> VerifyToken | Failed:
        pairs = _split_kv(text)
        if pairs is None:
            return Failed("oauth-malformed")
        token = _bearer(pairs)
        if token is None:
            return Failed("oauth-no-bearer-token")
        return VerifyToken(token, pairs.get("user") or None)

    def error_body(self, scope: str) -> bytes:
        body: dict[str, str] = {"status": "401", "schemes": "bearer"}
        if scope:
            body["scope"] = scope
        return json.dumps(body, separators=(",", ":")).encode()


# ------------------------------------------------------------- validation


class TokenRejected(Exception):
    """``reason`` is a short log token (expired, wrong-audience, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    username: str                 # the account name the token maps to
    issuer: str
    claim: str                    # the claim's value before strip_domain


class _KeySet:
    """One issuer's JWKS file, re-read when it changes on disk (key rotation
    needs no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._keys: jwt.PyJWKSet | None = None

    def keys(self) -> jwt.PyJWKSet:
        try:
            st = os.stat(self.path)
        except OSError:
            raise TokenRejected("jwks-unreadable") from None
        stamp = (st.st_mtime, st.st_size)
        if self._keys is None or stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text())
                self._keys = jwt.PyJWKSet.from_dict(data)
            except (OSError, ValueError, jwt.PyJWTError):
                raise TokenRejected("jwks-invalid") from None
            self._stamp = stamp
        return self._keys


class TokenValidator:
    def __init__(self, config: OAuthConfig) -> None:
        self.config = config
        self._issuers: dict[str, tuple[OAuthIssuer, _KeySet]] = {}
        for iss in config.issuers:
            assert iss.jwks_file is not None  # config validation requires it
            self._issuers[iss.issuer] = (iss, _KeySet(iss.jwks_file))

    @property
    def enabled(self) -> bool:
        return bool(self._issuers)

    def validate(self, token: str) -> TokenIdentity:
        """The identity in a valid token; TokenRejected(reason) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            unverified: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRejected("malformed-token") from None
        alg = header.get("alg")
        if alg not in self.config.algorithms:
            raise TokenRejected("algorithm-not-allowed")
        entry = self._issuers.get(str(unverified.get("iss", "")))
        if entry is None:
            raise TokenRejected("unknown-issuer")
        issuer, keyset = entry
        key = self._key(keyset.keys(), header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=list(issuer.audience),
                issuer=issuer.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("wrong-audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("wrong-issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad-signature") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("not-yet-valid") from None
        except jwt.MissingRequiredClaimError:
            raise TokenRejected("missing-claim") from None
        except jwt.PyJWTError:
            raise TokenRejected("invalid-token") from None
        claim = issuer.username_claim or self.config.username_claim
        return TokenIdentity(
            self._username(issuer, claims), issuer.issuer, str(claims.get(claim, ""))
        )

    @staticmethod
    def _key(keys: jwt.PyJWKSet, kid: object) -> jwt.PyJWK:
        if kid is not None:
            for k in keys.keys:
                if k.key_id == kid:
                    return k
            raise TokenRejected("unknown-key")
        if len(keys.keys) == 1:
            return keys.keys[0]
        raise TokenRejected("unknown-key")

    def _username(self, issuer: OAuthIssuer, claims: dict[str, Any]) -> str:
        claim = issuer.username_claim or self.config.username_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise TokenRejected("no-username-claim")
        if claim == "email" and claims.get("email_verified") is False:
            raise TokenRejected("email-not-verified")
        if issuer.strip_domain:
            local, at, domain = value.rpartition("@")
            if at and domain.lower() == issuer.strip_domain.lower():
                value = local
        try:
            return validate_username(value)
        except InvalidUsername:
            raise TokenRejected("bad-username-claim") from None
