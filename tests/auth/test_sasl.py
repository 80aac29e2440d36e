import base64

import pytest

from mailbag.auth.sasl import (
    CANCEL,
    Challenge,
    Done,
    Failed,
    LoginMechanism,
    PlainMechanism,
    SaslDecodeError,
    decode_client_response,
    encode_challenge,
    new_mechanism,
)


def test_plain_with_initial_response() -> None:
    assert PlainMechanism().start(b"\0alice\0secret") == Done("alice", b"secret")


def test_plain_authzid_equal_to_authcid_is_accepted() -> None:
    assert PlainMechanism().start(b"alice\0alice\0pw") == Done("alice", b"pw")
    assert PlainMechanism().start(b"Alice\0alice\0pw") == Done("alice", b"pw")


def test_plain_other_authzid_is_refused() -> None:
    assert PlainMechanism().start(b"bob\0alice\0pw") == Failed("authzid-not-permitted")


def test_plain_without_initial_response_asks_with_empty_challenge() -> None:
    mech = PlainMechanism()
    assert mech.start(None) == Challenge(b"")
    assert mech.step(b"\0alice\0pw") == Done("alice", b"pw")
    assert isinstance(mech.step(b"\0alice\0pw"), Failed)  # nothing after Done


@pytest.mark.parametrize(
    "message",
    [b"", b"alice", b"\0alice", b"\0alice\0", b"\0\0pw", b"a\0b\0c\0d", b"\0al\xffice\0pw", b"\0al\nice\0pw"],
)
def test_plain_malformed(message: bytes) -> None:
    assert isinstance(PlainMechanism().start(message), Failed)


def test_plain_password_keeps_raw_bytes() -> None:
    step = PlainMechanism().start("\0jörg\0pässword".encode())
    assert step == Done("jörg", "pässword".encode())


def test_done_repr_hides_password() -> None:
    assert "secret" not in repr(Done("alice", b"secret"))


def test_login_mechanism_dialogue() -> None:
    mech = LoginMechanism()
    assert mech.start(None) == Challenge(b"Username:")
    assert mech.step(b"alice") == Challenge(b"Password:")
    assert mech.step(b"pw") == Done("alice", b"pw")
    assert isinstance(mech.step(b"more"), Failed)


def test_login_mechanism_accepts_username_as_initial_response() -> None:
    mech = LoginMechanism()
    assert mech.start(b"alice") == Challenge(b"Password:")
    assert mech.step(b"pw") == Done("alice", b"pw")


def test_login_mechanism_rejects_empty_parts() -> None:
    assert isinstance(LoginMechanism().start(b""), Failed)
    mech = LoginMechanism()
    mech.start(None)
    mech.step(b"alice")
    assert mech.step(b"") == Failed("empty-password")


def test_step_before_start_fails() -> None:
    assert isinstance(PlainMechanism().step(b"\0a\0b"), Failed)
    assert isinstance(LoginMechanism().step(b"a"), Failed)


def test_new_mechanism_is_case_insensitive_and_fresh() -> None:
    a, b = new_mechanism("plain"), new_mechanism("PLAIN")
    assert isinstance(a, PlainMechanism) and a is not b
    assert isinstance(new_mechanism("Login"), LoginMechanism)
    assert new_mechanism("CRAM-MD5") is None


def test_decode_client_response() -> None:
    assert decode_client_response(base64.b64encode(b"\0a\0b") + b"\r\n") == b"\0a\0b"
    assert decode_client_response(b"*") is CANCEL
    assert decode_client_response(b"*\r\n") is CANCEL
    assert decode_client_response(b"") == b""
    assert decode_client_response(b"=") == b""
    for bad in (b"not base64!", b"YWJj=", b"YW Jj", b"*x"):
        with pytest.raises(SaslDecodeError):
            decode_client_response(bad)


def test_encode_challenge() -> None:
    assert encode_challenge(b"Username:") == b"VXNlcm5hbWU6"
    assert encode_challenge(b"") == b""
