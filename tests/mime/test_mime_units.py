"""Unit tests of the pieces of mime/: addresses, parameters, transfer
decoding, base subject, header sections, serialization, search text."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailbag.mime.addresses import RawAddress, parse_address_list
from mailbag.mime.facts import dump, load
from mailbag.mime.headers import decode_words, split_fields, unfold
from mailbag.mime.message import ParsedMessage
from mailbag.mime.params import parse_content_type, parse_structured
from mailbag.mime.parse import parse_message
from mailbag.mime.sections import binary_section, binary_size, section_bytes
from mailbag.mime.subject import base_subject
from mailbag.mime.text import field_texts, header_values, html_to_text, search_text
from mailbag.mime.transfer import UnknownEncoding, decode, decode_base64, decode_quoted_printable
from mailbag.wire.commands import Section


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# ------------------------------------------------------------------ addresses

@pytest.mark.parametrize(("value", "expected"), [
    (b"user@domain", [RawAddress(None, None, b"user", b"domain")]),
    (b"Real Name <u@d>", [RawAddress(b"Real Name", None, b"u", b"d")]),
    (b'"Doe, John" <j@d>', [RawAddress(b"Doe, John", None, b"j", b"d")]),
    (b'"a\\"b" <x@y>', [RawAddress(b'a"b', None, b"x", b"y")]),
    (b"u@d (Comment Name)", [RawAddress(b"Comment Name", None, b"u", b"d")]),
    (b"John Q. Public <jqp@x.org>", [RawAddress(b"John Q. Public", None, b"jqp", b"x.org")]),
    (b"<@a,@b:u@d>", [RawAddress(None, b"@a,@b", b"u", b"d")]),
    (b"local", [RawAddress(None, None, b"local", b"MISSING_DOMAIN")]),
    (b"<>", [RawAddress(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")]),
    (b"undisclosed-recipients:;", [RawAddress(None, None, b"undisclosed-recipients", None),
                                   RawAddress(None, None, None, None)]),
    (b"g: a@b, c@d", [RawAddress(None, None, b"g", None), RawAddress(None, None, b"a", b"b"),
                      RawAddress(None, None, b"c", b"d"), RawAddress(None, None, None, None)]),
    (b"=?utf-8?q?J=C3=B6rg?= <j@d>", [RawAddress(b"=?utf-8?q?J=C3=B6rg?=", None, b"j", b"d")]),
    (b"a@b,\r\n c@d", [RawAddress(None, None, b"a", b"b"), RawAddress(None, None, b"c", b"d")]),
    (b"x@[127.0.0.1]", [RawAddress(None, None, b"x", b"[127.0.0.1]")]),
    (b"J.R.R. Tolkien <t@x>", [RawAddress(b"J.R.R. Tolkien", None, b"t", b"x")]),
    (b"A (c) B < @r:u@d >", [RawAddress(b"A B", b"@r", b"u", b"d")]),
    (b"", []),
    (b" , ,", []),
])
def test_address_list(value: bytes, expected: list[RawAddress]) -> None:
    assert parse_address_list(value) == expected


# ----------------------------------------------------------------- parameters

def test_content_type_basics() -> None:
    parsed = parse_content_type(b' Text/HTML ; Charset="UTF-8"; format=flowed (c)')
    assert parsed is not None
    typ, sub, sv = parsed
    assert (typ, sub) == ("text", "html")
    assert sv.wire == ((b"charset", b"UTF-8"), (b"format", b"flowed"))
    assert sv.decoded == (("charset", "UTF-8"), ("format", "flowed"))


@pytest.mark.parametrize("value", [b"", b"text", b"/plain", b"text/", b";;"])
def test_invalid_content_type(value: bytes) -> None:
    assert parse_content_type(value) is None


def test_rfc2231_extended_single() -> None:
    sv = parse_structured(b"attachment; filename*=iso-8859-1'en'caf%E9.txt")
    assert sv.wire == ((b"filename*", b"iso-8859-1'en'caf%E9.txt"),)
    assert sv.decoded == (("filename", "café.txt"),)


def test_param_junk_is_skipped() -> None:
    sv = parse_structured(b'text/plain; ; junk; =x; a=1;b="2;3" ; c = 4')
    assert sv.decoded == (("a", "1"), ("b", "2;3"), ("c", "4"))


# ------------------------------------------------------------------ transfer

def test_base64_tolerant() -> None:
    assert decode_base64(b"aGVs\r\n bG8g d29y\tbGQ=") == b"hello world"
    assert decode_base64(b"aGVsbG8gd29ybGQ") == b"hello world"   # no padding
    assert decode_base64(b"aGVsbG8=garbage") == b"hello"          # stops at padding
    assert decode_base64(b"!!!") == b""
    assert decode_base64(b"Q") == b""


def test_quoted_printable() -> None:
    assert decode_quoted_printable(b"a=3Db=\r\nc  \r\nd=ZZ=\r\n") == b"a=bc\r\nd=ZZ"
    assert decode_quoted_printable(b"x=e9=E9") == b"x\xe9\xe9"
    assert decode_quoted_printable(b"soft = \t\nnext") == b"soft next"


def test_unknown_encoding() -> None:
    with pytest.raises(UnknownEncoding):
        decode(b"x", "x-uuencode")
    assert decode(b"x", "8bit") == b"x"


# -------------------------------------------------------------- base subject

@pytest.mark.parametrize(("subject", "base"), [
    ("Re: hello", "hello"),
    ("RE: Re: re:hello", "hello"),
    ("Fwd: Fw: hello (fwd)", "hello"),
    ("[list] Re: hello", "hello"),
    ("Re [x]: hello", "hello"),
    ("[fwd: hello]", "hello"),
    ("[Fwd: Re: hello (fwd)]", "hello"),
    ("  hello \t world  ", "hello world"),
    ("[only blob]", "[only blob]"),
    ("", ""),
    ("Re:", ""),
])
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


# ----------------------------------------------------------------- headers

def test_split_fields_with_folding_and_bare_lf() -> None:
    raw = b"A: 1\r\n  2\nB:3\r\nno colon\r\n\r\nbody"
    fields = split_fields(raw, 0, raw.index(b"body"))
    assert [(f.name, f.value) for f in fields] == [
        (b"A", b" 1\r\n  2"), (b"B", b"3"), (b"no colon", b"")]
    assert unfold(fields[0].value) == b"1  2"


def test_decode_words() -> None:
    assert decode_words("=?utf-8?q?a?= =?utf-8?q?b?= c") == "ab c"
    assert decode_words("=?ISO-8859-1?Q?caf=E9?=") == "café"
    assert decode_words("=?bogus?B?###?=") in ("=?bogus?B?###?=", "")
    assert decode_words("plain") == "plain"


# ------------------------------------------------------------------ messages

SIMPLE = crlf("""From: A <a@example.com>
To: b@example.com
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
 folded
Date: Thu, 15 Feb 2007 01:02:03 +0200
Message-ID: <m1@example.com>
References: <r1@x> <r2@x>
X-Dup: one
X-Dup: two

Hello
world
""")


def test_simple_message_facts() -> None:
    msg = parse_message(SIMPLE)
    assert msg.subject == "Grüße folded"
    assert msg.sent_date == datetime(2007, 2, 15, 1, 2, 3, tzinfo=timezone(timedelta(hours=2)))
    assert msg.message_id == "<m1@example.com>"
    assert msg.references == ("<r1@x>", "<r2@x>")
    assert msg.preview == "Hello world"
    assert msg.root.lines == 2
    assert msg.bodystructure == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2 NIL NIL NIL NIL)')
    assert msg.envelope.startswith(
        b'("Thu, 15 Feb 2007 01:02:03 +0200" "=?utf-8?q?Gr=C3=BC=C3=9Fe?= folded" '
        b'(("A" NIL "a" "example.com"))')


def test_minus_zero_zone_is_utc() -> None:
    msg = parse_message(b"Date: 1 Jan 2020 00:00:00 -0000\r\n\r\n")
    assert msg.sent_date == datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("value", "parsed"), [
    # RFC 5322 §3.3 "time = time-of-day FWS zone": no zone glued to the time.
    ("01 Jan 2001 00:01+0000", False),
    ("Fri, 20 Apr 2001 19:35:02-0400", False),
    ("Fri, 20 Apr 2001 19:35:02GMT", False),
    ("01 Jan 2001 00:01 +0000", True),
    ("Fri, 20 Apr 2001 19:35:02\r\n -0400 (EDT)", True),
    ("Fri, 20 Apr 2001 19:35:02 GMT", True),
])
def test_zone_must_be_apart_from_the_time(value: str, parsed: bool) -> None:
    msg = parse_message(b"Date: " + value.encode() + b"\r\n\r\n")
    assert (msg.sent_date is not None) is parsed


def test_header_fields_keep_folding_and_order() -> None:
    msg = parse_message(SIMPLE)
    got = section_bytes(SIMPLE, msg, Section(text="HEADER.FIELDS", fields=(b"X-DUP", b"SUBJECT")))
    assert got == (b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n folded\r\n"
                   b"X-Dup: one\r\nX-Dup: two\r\n\r\n")
    got = section_bytes(SIMPLE, msg, Section(text="HEADER.FIELDS.NOT",
                                             fields=(b"X-DUP", b"SUBJECT", b"DATE", b"REFERENCES",
                                                     b"MESSAGE-ID", b"TO")))
    assert got == b"From: A <a@example.com>\r\n\r\n"


def test_missing_parts_are_none() -> None:
    msg = parse_message(SIMPLE)
    assert section_bytes(SIMPLE, msg, Section(part=(1,))) == b"Hello\r\nworld\r\n"
    assert section_bytes(SIMPLE, msg, Section(part=(2,))) is None
    assert section_bytes(SIMPLE, msg, Section(part=(1, 1))) is None
    assert section_bytes(SIMPLE, msg, Section(part=(1,), text="HEADER")) is None
    assert section_bytes(SIMPLE, msg, Section(part=(0,))) is None
    assert binary_section(SIMPLE, msg, (3,)) is None
    assert binary_size(SIMPLE, msg, (1,)) == 14


def test_binary_whole_single_part_is_decoded() -> None:
    raw = crlf("Content-Transfer-Encoding: base64\n\naGVsbG8=\n")
    msg = parse_message(raw)
    assert binary_section(raw, msg, ()) == b"Content-Transfer-Encoding: base64\r\n\r\nhello"
    assert binary_section(raw, msg, (1,)) == b"hello"


def test_search_text_and_header_values() -> None:
    raw = crlf("""Subject: =?utf-8?q?caf=C3=A9?=
X-Tag: one
X-Tag: =?iso-8859-1?q?tw=F6?=
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

na=EFve
--b
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--b
Content-Type: message/rfc822

Subject: inner subject

inner text
--b--
""")
    msg = parse_message(raw)
    st = search_text(raw, msg)
    assert "Subject: café" in st.headers
    assert "naïve" in st.body and "inner subject" in st.body and "inner text" in st.body
    assert "PNG" not in st.body
    assert header_values(raw, msg, b"x-tag") == ["one", "twö"]
    assert header_values(raw, msg, b"X-None") == []


def test_search_text_drops_nul_in_headers() -> None:
    """The index's tokenizer ends a text at its first NUL: a NUL in a
    header (raw or from an encoded word) must not hide what follows it."""
    raw = crlf("""Subject: =?utf-8?b?YQBi?= after\x00tail
From: =?utf-8?q?Al=00ice?= <alice@example.org>

body
""")
    msg = parse_message(raw)
    st = search_text(raw, msg)
    assert "\x00" not in st.headers
    assert "Subject: ab aftertail" in st.headers
    fields = field_texts(msg)
    assert all("\x00" not in f for f in fields)
    assert "alice" in fields[0] and fields[4] == "ab aftertail"


def test_html_to_text() -> None:
    text = html_to_text("<p>a&lt;b</p><style>x</style>c&nbsp;d")
    assert "a<b" in text and "c\xa0d" in text and "x" not in text


def test_digest_defaults_to_rfc822() -> None:
    raw = crlf("""Content-Type: multipart/digest; boundary=d

--d

Subject: one

1
--d
Content-Type: text/plain

2
--d--
""")
    msg = parse_message(raw)
    first, second = msg.root.children
    assert (first.type, first.subtype) == ("message", "rfc822") and first.message is not None
    assert (second.type, second.subtype) == ("text", "plain")
    assert section_bytes(raw, msg, Section(part=(1,), text="HEADER")) == b"Subject: one\r\n\r\n"


# ------------------------------------------------------------------ facts

def test_facts_round_trip_and_rejects_junk() -> None:
    msg = parse_message(SIMPLE)
    data = dump(msg)
    assert load(data) == msg
    assert ParsedMessage.from_bytes(msg.to_bytes()) == msg
    for junk in (b"", b"{}", b"[2]", b"[1,2,3]", b"\xff", data.replace(b'"text"', b"7", 1)):
        with pytest.raises(ValueError):
            load(junk)


# ------------------------------------------------------------- performance

def test_big_message_parses_fast() -> None:
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
    attachment = line * 140_000   # ~10 MB of base64
    raw = (b"From: a@b\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
           b"--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
           b"--zz\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + attachment + b"--zz--\r\n")
    t0 = time.perf_counter()
    msg = parse_message(raw)
    elapsed = time.perf_counter() - t0
    assert msg.root.children[1].body_end - msg.root.children[1].body_start == len(attachment) - 2
    assert elapsed < 0.5, elapsed


def test_part_count_is_bounded() -> None:
    from mailbag.mime.parse import MAX_PARTS

    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * (MAX_PARTS + 50) + b"--b--\r\nepilogue\r\n"
    t0 = time.perf_counter()
    msg = parse_message(raw)
    assert len(msg.root.children) == MAX_PARTS
    assert msg.root.body_end == len(raw)
    assert time.perf_counter() - t0 < 2.0
