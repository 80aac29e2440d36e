"""The malformed-message corpus (tests/data/messages): every message parses,
renders syntactically valid ENVELOPE/BODY/BODYSTRUCTURE, and every section of
every part can be fetched; a few messages are checked in detail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mimetest_support import DATA, check_body, parse_all

from mailbag.mime.facts import dump, load
from mailbag.mime.message import ParsedMessage, Part
from mailbag.mime.parse import parse_message
from mailbag.mime.sections import UnknownEncoding, binary_section, find_part, section_bytes
from mailbag.mime.text import search_text
from mailbag.wire.commands import Section

FILES = sorted(DATA.glob("*.eml"))


def load_msg(name: str) -> tuple[bytes, ParsedMessage]:
    raw = (DATA / name).read_bytes()
    return raw, parse_message(raw)


def paths(part: Part, prefix: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    """Every part number of a message, as IMAP numbers them."""
    container = part.message if prefix and part.message is not None else part
    if container.type == "multipart":
        for i, child in enumerate(container.children, 1):
            yield prefix + (i,)
            yield from paths(child, prefix + (i,))
    elif not prefix:
        yield (1,)
        if part.message is not None:
            yield from paths(part, (1,))
    elif part.message is not None:
        yield prefix + (1,)
        yield from paths(part.message, prefix + (1,)) if part.message.type == "multipart" else iter(())


def test_corpus_is_big_enough() -> None:
    assert len(FILES) >= 15


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_message(path: Path) -> None:
    raw = path.read_bytes()
    msg = parse_message(raw)
    env = parse_all(msg.envelope)
    assert isinstance(env, list) and len(env) == 10
    check_body(parse_all(msg.body), extended=False)
    check_body(parse_all(msg.bodystructure), extended=True)
    assert load(dump(msg)) == msg
    assert section_bytes(raw, msg, Section()) == raw
    for text in ("HEADER", "TEXT"):
        assert section_bytes(raw, msg, Section(text=text)) is not None  # type: ignore[arg-type]
    for p in paths(msg.root):
        part = find_part(msg.root, p)
        assert part is not None, p
        assert 0 <= part.header_start <= part.body_start <= part.body_end <= len(raw)
        for text in (None, "MIME", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            section_bytes(raw, msg, Section(part=p, text=text, fields=(b"FROM",)))  # type: ignore[arg-type]
        try:
            binary_section(raw, msg, p)
        except UnknownEncoding:
            assert part.encoding not in ("7bit", "8bit", "binary", "base64", "quoted-printable")
    search_text(raw, msg)


def test_nested_200_is_capped() -> None:
    raw, msg = load_msg("nested-200.eml")
    depth, part = 0, msg.root
    while part.children:
        part = part.children[0]
        depth += 1
    assert depth == 50
    assert (part.type, part.subtype) == ("text", "plain")
    assert b"the bottom" in raw[part.body_start:part.body_end]


def test_unterminated_multipart_keeps_its_parts() -> None:
    raw, msg = load_msg("unterminated-multipart.eml")
    assert [c.subtype for c in msg.root.children] == ["plain", "html"]
    assert section_bytes(raw, msg, Section(part=(1,))) == b"first part"
    assert section_bytes(raw, msg, Section(part=(2,))) == b"<p>second part, never closed\r\n"


def test_bad_boundary_has_no_parts_but_valid_structure() -> None:
    raw, msg = load_msg("bad-boundary.eml")
    assert msg.root.type == "multipart" and msg.root.children == ()
    assert msg.body == (b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")')
    assert section_bytes(raw, msg, Section(part=(1,))) is None


def test_boundary_prefix_longest_match_wins() -> None:
    raw, msg = load_msg("boundary-prefix.eml")
    alt, three = msg.root.children
    assert [c.subtype for c in alt.children] == ["plain", "html"]
    assert section_bytes(raw, msg, Section(part=(1, 2))) == b"<i>two</i>"
    assert section_bytes(raw, msg, Section(part=(2,))) == b"three"


def test_nested_same_boundary_tolerated() -> None:
    raw, msg = load_msg("nested-same-boundary.eml")
    assert msg.root.children  # whatever the split, it parsed
    assert b"outer second" in raw


def test_bare_lf_message() -> None:
    raw, msg = load_msg("bare-lf.eml")
    plain, html = msg.root.children
    assert section_bytes(raw, msg, Section(part=(1,))) == b"plain text with bare LF"
    assert section_bytes(raw, msg, Section(part=(2,))) == b"<b>html</b>"
    assert section_bytes(raw, msg, Section(part=(2,), text="MIME")) == b"Content-Type: text/html\n\n"
    assert dict(plain.params)["charset"] == "utf-8"
    assert msg.preview == "plain text with bare LF"


def test_no_separator_all_header() -> None:
    raw, msg = load_msg("no-separator.eml")
    assert msg.root.body_start == len(raw)
    assert section_bytes(raw, msg, Section(text="TEXT")) == b""


def test_empty_message() -> None:
    raw, msg = load_msg("empty.eml")
    assert raw == b""
    assert msg.envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert msg.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)')
    assert section_bytes(raw, msg, Section(part=(1,))) == b""


def test_eightbit_headers_become_literals() -> None:
    raw, msg = load_msg("eightbit-headers.eml")
    assert msg.subject == "Grüße aus Köln"
    assert msg.from_[0].name == "Jörg Müller"
    assert msg.to[0].name == "René"  # latin-1 fallback
    assert b"{17}\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln" in msg.envelope


def test_nul_bytes_are_not_sent() -> None:
    raw, msg = load_msg("nul-bytes.eml")
    assert b"\x00" not in msg.envelope and b"\x00" not in msg.bodystructure
    assert "\x00" not in search_text(raw, msg).body


def test_rfc2231_and_extension_data() -> None:
    raw, msg = load_msg("rfc2231-params.eml")
    pdf = msg.root.children[0]
    assert dict(pdf.params)["name"] == "€ rates for 2024.pdf"
    assert msg.bodystructure == (
        b'(("application" "pdf" ("name*" "utf-8\'\'%E2%82%AC%20rates%20for%202024.pdf")'
        b' "<pdf@example.com>" "Rates" "base64" 12'
        b' "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "long file name.pdf"'
        b' "size" "1234")) ("en" "de") "http://example.com/ rates.pdf")'
        b' "mixed" ("boundary" "outer") NIL NIL NIL)')
    assert binary_section(raw, msg, (1,)) == b"%PDF-1.4\n"


def test_unknown_cte_raises() -> None:
    raw, msg = load_msg("unknown-cte.eml")
    with pytest.raises(UnknownEncoding) as info:
        binary_section(raw, msg, (1,))
    assert info.value.encoding == "x-uuencode"
    assert section_bytes(raw, msg, Section(part=(1,))) is not None


def test_message_global_is_encapsulated() -> None:
    raw, msg = load_msg("message-global.eml")
    assert msg.root.message is not None
    assert section_bytes(raw, msg, Section(part=(1,), text="HEADER.FIELDS",
                                           fields=(b"SUBJECT",))) == (
        b"Subject: =?utf-8?q?inn=C3=A9r?=\r\n\r\n")
    assert section_bytes(raw, msg, Section(part=(1, 1))) == b"inner body\r\n"
    assert "innér" in search_text(raw, msg).body
    assert b'"message" "global"' in msg.bodystructure


def test_multipart_without_boundary_is_text() -> None:
    raw, msg = load_msg("multipart-no-boundary.eml")
    assert (msg.root.type, msg.root.subtype) == ("text", "plain")


def test_duplicate_content_type_first_wins() -> None:
    raw, msg = load_msg("duplicate-content-type.eml")
    assert (msg.root.type, msg.root.subtype, msg.root.encoding) == ("text", "plain", "7bit")


def test_bad_addresses_do_not_break_envelope() -> None:
    raw, msg = load_msg("bad-addresses.eml")
    env = parse_all(msg.envelope)
    assert isinstance(env, list)
    assert msg.sent_date is None
    assert msg.message_id == "no brackets"
    assert msg.references == ("<x@y>", "<z@w>")
    hosts = [a.host for a in msg.to]
    assert "h" in hosts and any(a.adl == "@r1,@r2" for a in msg.to)


def test_qp_html_search_and_preview() -> None:
    raw, msg = load_msg("qp-soft-breaks.eml")
    assert msg.preview == "Café & crème"
    body = search_text(raw, msg).body
    assert "Café & crème" in body and "evil" not in body and "color" not in body


def test_invalid_charset_is_tolerated() -> None:
    raw, msg = load_msg("invalid-charset.eml")
    assert "caf" in search_text(raw, msg).body
    assert "qapla'" in msg.subject or "klingon" in msg.subject
