"""OAUTHBEARER (RFC 7628) / XOAUTH2 message parsing and JWT validation
against a JWKS file (keys generated here)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from jwt_support import AUDIENCE, ISSUER, Provider

from mailbag.auth.oauth import (
    OAuthBearerMechanism,
    TokenRejected,
    TokenValidator,
    XOAuth2Mechanism,
)
from mailbag.auth.sasl import Challenge, Failed, VerifyToken
from mailbag.config import OAuthConfig, OAuthIssuer


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider()


@pytest.fixture
def validator(provider: Provider, tmp_path: Path) -> TokenValidator:
    jwks = provider.write_jwks(tmp_path / "idp.jwks.json")
    return TokenValidator(OAuthConfig(issuers=(
        OAuthIssuer(issuer=ISSUER, jwks_file=jwks, audience=(AUDIENCE,),
                    strip_domain="example.org"),
    )))


def test_valid_rs256_and_es256_tokens_map_the_email_claim(
        provider: Provider, validator: TokenValidator) -> None:
    for alg in ("RS256", "ES256"):
        ident = validator.validate(provider.token(alg))
        assert ident.username == "alice" and ident.issuer == ISSUER
        assert ident.claim == "alice@example.org"


def test_configured_claim(provider: Provider, tmp_path: Path) -> None:
    v = TokenValidator(OAuthConfig(username_claim="preferred_username", issuers=(
        OAuthIssuer(issuer=ISSUER, jwks_file=provider.write_jwks(tmp_path / "k.json"),
                    audience=(AUDIENCE,)),)))
    assert v.validate(provider.token(preferred_username="Bob")).username == "bob"
    with pytest.raises(TokenRejected, match="no-username-claim"):
        v.validate(provider.token())


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"iss": "https://evil.example/"}, "unknown-issuer"),
    ({"aud": "someone-else"}, "wrong-audience"),
    ({"exp": None}, "missing-claim"),
    ({"nbf": int(time.time()) + 3600}, "not-yet-valid"),
    ({"email_verified": False}, "email-not-verified"),
    ({"email": "x y@example.org"}, "bad-username-claim"),
])
def test_bad_claims_are_refused(provider: Provider, validator: TokenValidator,
                                overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(TokenRejected) as e:
        validator.validate(provider.token(**overrides))
    assert e.value.reason == reason


def test_wrongly_signed_tokens_are_refused(provider: Provider, validator: TokenValidator) -> None:
    other = Provider()
    # Signed by another key that claims the trusted key id.
    with pytest.raises(TokenRejected, match="bad-signature"):
        validator.validate(other.token())
    # A tampered payload.
    head, _, sig = provider.token().split(".")
    forged_claims = jwt.utils.base64url_encode(json.dumps({
        "iss": ISSUER, "aud": AUDIENCE, "email": "bob@example.org",
        "exp": int(time.time()) + 600}).encode()).decode()
    with pytest.raises(TokenRejected, match="bad-signature"):
        validator.validate(f"{head}.{forged_claims}.{sig}")
    # alg "none" and HMAC are never accepted.
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "email": "alice@example.org",
                           "exp": int(time.time()) + 600}, None, algorithm="none")
    with pytest.raises(TokenRejected, match="algorithm-not-allowed"):
        validator.validate(unsigned)
    hs = jwt.encode({"iss": ISSUER}, "secret-key-long-enough-for-hs256-0000", algorithm="HS256")
    with pytest.raises(TokenRejected, match="algorithm-not-allowed"):
        validator.validate(hs)
    with pytest.raises(TokenRejected, match="malformed-token"):
        validator.validate("not.a.jwt")


def test_unknown_key_id(provider: Provider, validator: TokenValidator) -> None:
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "email": "a@example.org",
                        "exp": int(time.time()) + 60}, provider.rsa, algorithm="RS256",
                       headers={"kid": "rotated-away"})
    with pytest.raises(TokenRejected, match="unknown-key"):
        validator.validate(token)


def test_jwks_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    first, second = Provider(), Provider()
    path = first.write_jwks(tmp_path / "k.json")
    v = TokenValidator(OAuthConfig(issuers=(
        OAuthIssuer(issuer=ISSUER, jwks_file=path, audience=(AUDIENCE,)),)))
    v.validate(first.token())
    second.write_jwks(path)
    path.touch()
    with pytest.raises(TokenRejected):
        v.validate(first.token())
    v.validate(second.token())


def test_oauthbearer_message_and_error_challenge() -> None:
    m = OAuthBearerMechanism()
    msg = b"n,a=alice@example.org,\x01host=server.example.com\x01port=143\x01auth=Bearer abc.def.ghi\x01\x01"
    step = m.start(msg)
    assert step == VerifyToken("abc.def.ghi", "alice@example.org")
    err = m.rejected("expired")
    assert isinstance(err, Challenge)
    assert json.loads(err.data) == {"status": "invalid_token", "schemes": "bearer"}
    assert m.step(b"\x01") == Failed("expired")


def test_xoauth2_message() -> None:
    m = XOAuth2Mechanism()
    assert m.start(None) == Challenge(b"")
    step = m.step(b"user=alice\x01auth=Bearer tok\x01\x01")
    assert step == VerifyToken("tok", "alice")
    err = m.rejected("bad-signature")
    assert isinstance(err, Challenge) and json.loads(err.data)["status"] == "401"
    # imaplib answers the error challenge by repeating its message: still a failure.
    assert m.step(b"user=alice\x01auth=Bearer tok\x01\x01") == Failed("bad-signature")


@pytest.mark.parametrize("msg", [
    b"p=tls-exporter,,\x01auth=Bearer t\x01\x01", b"n,,\x01auth=Basic t\x01\x01",
    b"n,,\x01auth=Bearer t\x01", b"garbage", b"n,,\x01auth=Bearer \x01\x01", b"\xff",
])
def test_malformed_oauthbearer(msg: bytes) -> None:
    assert isinstance(OAuthBearerMechanism().start(msg), Failed)
