"""BODY[] renderings of messages whose bodies hold NUL (RFC 3516 §4.2)."""

from __future__ import annotations

import base64

from mailbag.mime.parse import parse_message
from mailbag.mime.sections import binary_section, section_bytes
from mailbag.mime.unbinary import without_nul
from mailbag.wire.commands import Section

BINARY_PART = b"\x00-\xe4\n\r\n\n\n"
MULTI = (b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
         b"--b\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY_PART + b"\r\n--b--\r\n")


def test_message_without_nul_is_untouched() -> None:
    raw = b"Subject: x\r\n\r\nplain\r\n"
    assert without_nul(raw, parse_message(raw)) is raw


def test_binary_part_becomes_base64_and_other_parts_stay() -> None:
    safe = without_nul(MULTI, parse_message(MULTI))
    assert b"\x00" not in safe
    msg = parse_message(safe)
    assert section_bytes(safe, msg, Section(part=(1,))) == b"hello"
    mime = section_bytes(safe, msg, Section(part=(2,), text="MIME")) or b""
    assert b"Content-Transfer-Encoding: base64" in mime
    assert b"binary" not in mime
    # Decoding the converted part gives back exactly the original bytes.
    assert binary_section(safe, msg, (2,)) == BINARY_PART


def test_single_part_message_body_is_converted() -> None:
    raw = (b"Content-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY_PART)
    safe = without_nul(raw, parse_message(raw))
    header, _, body = safe.partition(b"\r\n\r\n")
    assert header.count(b"Content-Transfer-Encoding") == 1
    assert base64.b64decode(body) == BINARY_PART


def test_nul_in_header_is_replaced() -> None:
    raw = b"Subject: a\x00b\r\n\r\nbody\r\n"
    assert without_nul(raw, parse_message(raw)) == b"Subject: a b\r\n\r\nbody\r\n"
