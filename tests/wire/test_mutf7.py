"""Modified UTF-7 (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbag.wire.mutf7 import decode_mutf7, encode_mutf7

PAIRS = [
    ("INBOX", b"INBOX"),
    ("&", b"&-"),
    ("Tom & Jerry", b"Tom &- Jerry"),
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("€", b"&IKw-"),
    ("😀", b"&2D3eAA-"),
    ("", b""),
]


@pytest.mark.parametrize(("text", "wire"), PAIRS)
def test_round_trip(text: str, wire: bytes) -> None:
    assert encode_mutf7(text) == wire
    assert decode_mutf7(wire) == text
    assert decode_mutf7(wire.decode()) == text


@pytest.mark.parametrize("bad", [
    b"&", b"&U,BTFw", b"&Jjo!-", b"&AGE-",  # unterminated, bad char, encodes 'a'
    b"caf\xc3\xa9", b"\x01", b"&U,BTFw-&ZeVnLIqe-",  # 8-bit, control, adjacent shifts
    b"&2D0-",  # lone surrogate
    b"&AP-", b"&APx-",  # bad length / non-zero leftover bits
])
def test_invalid(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_mutf7(bad)


def test_non_ascii_str_is_invalid() -> None:
    with pytest.raises(ValueError):
        decode_mutf7("café")


@given(st.text())
def test_property_round_trip(text: str) -> None:
    try:
        text.encode("utf-16-be")
    except UnicodeEncodeError:
        return  # lone surrogates are not names
    assert decode_mutf7(encode_mutf7(text)) == text


@given(st.binary(max_size=40))
def test_decode_never_raises_other_errors(data: bytes) -> None:
    try:
        decode_mutf7(data)
    except ValueError:
        pass
