"""SCRAM-SHA-256 (RFC 5802, RFC 7677) server mechanism: the RFC 7677 §3
example on both halves, channel binding rules (RFC 5802 §6, RFC 9266),
malformed input, RFC 5803 storage and SASLprep (RFC 4013)."""

from __future__ import annotations

import base64

import pytest
from scram_client import ScramClient

from mailbag.auth.sasl import (
    Challenge,
    Failed,
    MechanismContext,
    NeedScramCredential,
    Verified,
    available_mechanisms,
    create_mechanism,
)
from mailbag.auth.saslprep import SaslprepError, saslprep
from mailbag.auth.scram import ScramCredential, ScramMechanism, fake_credential, make_credential

# RFC 7677 §3
USER, PASSWORD = "user", "pencil"
C_NONCE = "rOprNGfwEbeRWgbNEkqO"
S_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

CRED = make_credential(PASSWORD.encode(), 4096, SALT)


def test_server_side_matches_rfc7677_example() -> None:
    m = ScramMechanism(server_nonce=S_NONCE)
    assert m.start(CLIENT_FIRST) == NeedScramCredential("user")
    assert m.provide(CRED, known=True) == Challenge(SERVER_FIRST)
    assert m.step(CLIENT_FINAL) == Challenge(SERVER_FINAL)
    assert m.step(b"") == Verified("user")


def test_client_side_matches_rfc7677_example() -> None:
    c = ScramClient(USER, PASSWORD, nonce=C_NONCE)
    assert c.first() == CLIENT_FIRST
    assert c.final(SERVER_FIRST) == CLIENT_FINAL
    c.check_server_final(SERVER_FINAL)


def test_without_initial_response_server_asks_with_empty_challenge() -> None:
    m = ScramMechanism(server_nonce=S_NONCE)
    assert m.start(None) == Challenge(b"")
    assert isinstance(m.step(CLIENT_FIRST), NeedScramCredential)


def test_wrong_password_and_unknown_user_fail_at_the_proof() -> None:
    m = ScramMechanism()
    c = ScramClient(USER, "wrong")
    m.start(c.first())
    step = m.provide(CRED, known=True)
    assert isinstance(step, Challenge)
    assert m.step(c.final(step.data)) == Failed("bad-password")

    m = ScramMechanism()
    c = ScramClient("nobody", PASSWORD)
    m.start(c.first())
    step = m.provide(fake_credential("nobody", 4096), known=False)
    assert isinstance(step, Challenge) and b",i=4096" in step.data
    assert m.step(c.final(step.data)) == Failed("unknown-user")


def test_fake_salt_is_stable_per_user() -> None:
    assert fake_credential("x", 4096).salt == fake_credential("x", 4096).salt
    assert fake_credential("x", 4096).salt != fake_credential("y", 4096).salt


def test_nonce_must_be_echoed() -> None:
    m = ScramMechanism(server_nonce=S_NONCE)
    m.start(CLIENT_FIRST)
    m.provide(CRED, known=True)
    bad = CLIENT_FINAL.replace(b"k0,p=", b"k1,p=")
    assert m.step(bad) == Failed("scram-nonce-mismatch")


def _exchange(m: ScramMechanism, c: ScramClient) -> object:
    step = m.start(c.first())
    if not isinstance(step, NeedScramCredential):
        return step
    first = m.provide(CRED, known=True)
    assert isinstance(first, Challenge)
    return m.step(c.final(first.data))


CB = bytes(range(32))


def test_plus_with_matching_binding_succeeds() -> None:
    m = ScramMechanism(plus=True, channel_binding=CB, plus_offered=True)
    c = ScramClient(USER, PASSWORD, cb_name="tls-exporter", cb_data=CB)
    step = _exchange(m, c)
    assert isinstance(step, Challenge)
    c.check_server_final(step.data)
    assert m.step(b"") == Verified("user")


def test_plus_with_other_binding_data_fails() -> None:
    m = ScramMechanism(plus=True, channel_binding=CB, plus_offered=True)
    c = ScramClient(USER, PASSWORD, cb_name="tls-exporter", cb_data=bytes(32))
    assert _exchange(m, c) == Failed("scram-channel-bindings-dont-match")


@pytest.mark.parametrize(("plus", "flag", "cb_name", "reason"), [
    (True, "n", None, "scram-plus-without-cb"),
    (True, None, "tls-unique", "scram-unsupported-cb-type"),
    (False, None, "tls-exporter", "scram-cb-without-plus"),
    (False, "y", None, "scram-downgrade"),
])
def test_channel_binding_flag_rules(plus: bool, flag: str | None, cb_name: str | None,
                                    reason: str) -> None:
    m = ScramMechanism(plus=plus, channel_binding=CB if plus else None, plus_offered=True)
    c = ScramClient(USER, PASSWORD, cb_name=cb_name, cbflag=flag, cb_data=CB)
    assert _exchange(m, c) == Failed(reason)


def test_y_flag_is_fine_when_plus_is_not_offered() -> None:
    m = ScramMechanism(plus_offered=False)
    c = ScramClient(USER, PASSWORD, cbflag="y")
    assert isinstance(_exchange(m, c), Challenge)


@pytest.mark.parametrize("first", [
    b"", b"n,,", b"x,,n=user,r=abc", b"n,,m=ext,n=user,r=abc", b"n,,n=us=er,r=abc",
    b"n,,n=user", b"n,a=other,n=user,r=abc", b"n,,r=abc,n=user", b"n,,n=user,r=a,b\xff",
])
def test_malformed_client_first(first: bytes) -> None:
    m = ScramMechanism()
    step = m.start(first) if first else m.step(first) if m.start(None) else None
    assert isinstance(step, Failed)


@pytest.mark.parametrize("final", [
    b"garbage", b"r=x,c=biws,p=AAAA", b"c=biws,r=x", b"c=!!!,r=x,p=AAAA",
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
])
def test_malformed_client_final(final: bytes) -> None:
    m = ScramMechanism(server_nonce=S_NONCE)
    m.start(CLIENT_FIRST)
    m.provide(CRED, known=True)
    assert isinstance(m.step(final), Failed)


def test_authzid_must_name_the_same_user() -> None:
    m = ScramMechanism()
    assert isinstance(m.start(b"n,a=user,n=user,r=abc"), NeedScramCredential)


def test_rfc5803_round_trip_and_rejects() -> None:
    text = CRED.to_string()
    assert text.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert ScramCredential.from_string(text) == CRED
    for bad in ("", "SCRAM-SHA-1$4096:a$b:c", "SCRAM-SHA-256$x:AA==$AA==:AA==",
                "SCRAM-SHA-256$4096:AA==$AA==:AA=="):
        with pytest.raises(ValueError):
            ScramCredential.from_string(bad)


def test_saslprep() -> None:
    # RFC 4013 §3 examples.
    assert saslprep("I\u00adX") == "IX"
    assert saslprep("user") == "user"
    assert saslprep("USER") == "USER"
    assert saslprep("\u00aa") == "a"
    assert saslprep("\u2168") == "IX"
    assert saslprep("a\u00a0b") == "a b"
    for bad in ("\u0007", "\u0627\u0031"):
        with pytest.raises(SaslprepError):
            saslprep(bad)
    # Composed and decomposed forms of a password give the same secrets.
    one = make_credential("caf\u00e9".encode(), 4096, SALT)
    two = make_credential("cafe\u0301".encode(), 4096, SALT)
    assert one == two


def test_registry_offers_by_context() -> None:
    assert available_mechanisms(MechanismContext(secure=False)) == []
    plain = available_mechanisms(MechanismContext(secure=True))
    assert plain == ["SCRAM-SHA-256", "PLAIN", "LOGIN"]
    full = available_mechanisms(MechanismContext(True, tls_exporter=CB, oauth=True))
    assert full[:4] == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "OAUTHBEARER", "XOAUTH2"]
    assert create_mechanism("scram-sha-256-plus", MechanismContext(True)) is None
    mech = create_mechanism("SCRAM-SHA-256-PLUS", MechanismContext(True, tls_exporter=CB))
    assert isinstance(mech, ScramMechanism) and mech.plus
