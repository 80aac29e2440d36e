"""Property tests: parse_message, section_bytes, binary_section and the text
functions never raise, and their output is valid IMAP, whatever the input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mimetest_support import check_body, parse_all

from mailbag.mime.facts import dump, load
from mailbag.mime.parse import parse_message
from mailbag.mime.sections import UnknownEncoding, binary_section, section_bytes
from mailbag.mime.text import header_values, search_text
from mailbag.wire.commands import Section

# Building blocks that reach the interesting code paths far more often than
# random bytes would.
_PIECES = [
    b"\r\n", b"\n", b"\r", b"\x00", b"\xff\xfe", b" ", b"\t", b":", b";", b"=", b'"',
    b"--", b"--b", b"--b--", b"--bb", b"--c", b"--c--",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/digest; boundary=c\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/global\r\n",
    b"Content-Type: text/html; charset=iso-8859-1\r\n",
    b"Content-Type: text/plain; charset*=utf-8''%E2%82; name*0=a; name*1*=%41\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: x-weird\r\n",
    b"Content-Disposition: attachment; filename=\"x\r\n",
    b"Content-Language: en,\r\n",
    b"From: \"A\" <a@b>, group: c@d;, (c) e@f, <@r:g@h>\r\n",
    b"To: undisclosed-recipients:;\r\n",
    b"Subject: =?utf-8?q?=C3=A9?= Re: [x] Fwd: y (fwd)\r\n",
    b"Date: Thu, 15 Feb 2007 01:02:03 +0200\r\n",
    b"=?x?b?!!?=", b"=ZZ", b"=\r\n", b"aGVsbG8=", b"<p>&amp;<b>",
]

messages = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(_PIECES) | st.binary(max_size=8), max_size=60).map(b"".join),
)

parts = st.lists(st.integers(min_value=0, max_value=4), max_size=4).map(tuple)
texts = st.sampled_from([None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, parts, texts)
def test_never_raises(raw: bytes, part: tuple[int, ...], text: str | None) -> None:
    msg = parse_message(raw)
    env = parse_all(msg.envelope)
    assert isinstance(env, list) and len(env) == 10
    check_body(parse_all(msg.body), extended=False)
    check_body(parse_all(msg.bodystructure), extended=True)
    assert load(dump(msg)) == msg
    data = section_bytes(raw, msg, Section(part=part, text=text,  # type: ignore[arg-type]
                                           fields=(b"FROM", b"CONTENT-TYPE")))
    assert data is None or isinstance(data, bytes)
    try:
        binary_section(raw, msg, part)
    except UnknownEncoding:
        pass
    search_text(raw, msg)
    header_values(raw, msg, b"subject")
    assert len(msg.preview) <= 200


def _offsets_ok(p: object, size: int) -> None:
    from mailbag.mime.message import Part

    assert isinstance(p, Part)
    assert 0 <= p.header_start <= p.body_start <= p.body_end <= size
    for c in p.children:
        assert p.body_start <= c.header_start and c.body_end <= p.body_end
        _offsets_ok(c, size)
    if p.message is not None:
        assert p.message.header_start == p.body_start
        _offsets_ok(p.message, size)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_offsets_are_nested(raw: bytes) -> None:
    _offsets_ok(parse_message(raw).root, len(raw))
