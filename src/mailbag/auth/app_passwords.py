"""Per-device app passwords (DESIGN.md data model, docs/auth.md).

A generated secret is 20 letters from a 32-letter alphabet (100 bits), shown
in groups of four ("abcd-efgh-jkmn-pqrs-tuvw") and accepted with or without
the dashes and in any case. Only its argon2id hash is stored, plus a
*selector*: the first 8 hex digits of SHA-256 of the normalized secret. The
selector lets a login check the one matching app password instead of running
argon2 once per device; 32 bits of a hash reveal nothing usable about a
100-bit secret.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

# No 0/1/l/o: nothing to confuse when typing a secret from a screen.
ALPHABET: Final = "abcdefghijkmnpqrstuvwxyz23456789"
LENGTH: Final = 20
GROUP: Final = 4
MAX_LABEL: Final = 64


def generate() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize(password: bytes) -> str | None:
    """The canonical secret if ``password`` has the shape of an app
    password, else None (then it can only be the main password)."""
    try:
        text = password.decode("ascii")
    except UnicodeDecodeError:
        return None
    text = text.replace("-", "").replace(" ", "").lower()
    if len(text) != LENGTH or any(c not in ALPHABET for c in text):
        return None
    return text


def selector(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def validate_label(label: str) -> str:
    """A label names a device: printable, no control characters, <= 64 chars."""
    label = label.strip()
    if not label:
        raise ValueError("the label is empty")
    if len(label) > MAX_LABEL:
        raise ValueError(f"the label is longer than {MAX_LABEL} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in label):
        raise ValueError("the label holds control characters")
    return label
