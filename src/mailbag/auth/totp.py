"""Time-based one-time passwords, RFC 6238 (TOTP) over RFC 4226 (HOTP):
HMAC-SHA1, 30-second steps, 6 digits (the defaults every authenticator app
understands), and the ``otpauth://`` URI those apps scan (Key URI Format).

A code is accepted for the current step and one step either side (RFC 6238
§5.2 clock drift); the caller records the step it matched so the same code
cannot be used twice (RFC 6238 §5.2, "MUST NOT accept the second attempt").
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
import time
import urllib.parse
from typing import Final

DIGITS: Final = 6
PERIOD: Final = 30
SECRET_BYTES: Final = 20          # RFC 4226 §4: 160 bits recommended
WINDOW: Final = 1


def new_secret() -> str:
    """A random secret, base32 without padding (what the URI carries)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: dynamic truncation of HMAC-SHA-1(key, counter)."""
    mac = hmac.digest(key, struct.pack(">Q", counter), "sha1")
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def time_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // PERIOD)


def code_at(secret: str, now: float | None = None) -> str:
    return hotp(_key(secret), time_step(now))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (within the drift window), or None."""
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = _key(secret)
    current = time_step(now)
    found = None
    # Check every candidate so the time taken does not depend on which matched.
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(hotp(key, step), code) and found is None:
            found = step
    return found


def provisioning_uri(secret: str, account: str, issuer: str = "mailbag") -> str:
    """``otpauth://totp/issuer:account?secret=...&issuer=...`` for QR codes."""
    label = urllib.parse.quote(f"{issuer}:{account}", safe="@:")
    query = urllib.parse.urlencode({
        "secret": secret, "issuer": issuer, "algorithm": "SHA1",
        "digits": DIGITS, "period": PERIOD,
    })
    return f"otpauth://totp/{label}?{query}"
