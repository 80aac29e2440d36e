"""TOTP (RFC 6238) and HOTP (RFC 4226): the RFCs' test vectors, the drift
window and the otpauth:// URI."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from mailbag.auth import totp

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(("counter", "code"), [
    (0, "755224"), (1, "287082"), (2, "359152"), (9, "520489"),   # RFC 4226 App. D
])
def test_hotp_rfc4226_vectors(counter: int, code: str) -> None:
    assert totp.hotp(b"12345678901234567890", counter) == code


@pytest.mark.parametrize(("t", "code"), [
    (59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"),
    (2000000000, "69279037"),                                      # RFC 6238 App. B, SHA1
])
def test_totp_rfc6238_vectors(t: int, code: str) -> None:
    assert totp.hotp(b"12345678901234567890", totp.time_step(t), digits=8) == code


def test_matching_step_accepts_one_step_of_drift_only() -> None:
    now = 1_000_000_000.0
    step = totp.time_step(now)
    for delta in (-1, 0, 1):
        code = totp.code_at(RFC_SECRET, now + delta * totp.PERIOD)
        assert totp.matching_step(RFC_SECRET, code, now) == step + delta
    far = totp.code_at(RFC_SECRET, now + 3 * totp.PERIOD)
    assert totp.matching_step(RFC_SECRET, far, now) is None
    assert totp.matching_step(RFC_SECRET, "12345", now) is None
    assert totp.matching_step(RFC_SECRET, "abcdef", now) is None


def test_provisioning_uri() -> None:
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == totp.SECRET_BYTES
    uri = totp.provisioning_uri(secret, "alice")
    parsed = urllib.parse.urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert urllib.parse.unquote(parsed.path) == "/mailbag:alice"
    query = urllib.parse.parse_qs(parsed.query)
    assert query["secret"] == [secret] and query["digits"] == ["6"] and query["period"] == ["30"]
