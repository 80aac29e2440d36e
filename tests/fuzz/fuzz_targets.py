"""Fuzz targets shared by the suite (tests/fuzz/test_fuzz_*.py, a few
hundred examples each) and the long on-demand run (tools/fuzz.py, which
drives the same hypothesis tests through ``fuzz_one_input``).

Each target takes structured input from hypothesis and asserts the contract
of one sans-IO layer:

- wire/: whatever bytes arrive, in whatever chunks and with whatever mode
  switches the session makes, the parser returns only its event types,
  always makes progress, and holds no more than a line's worth of unread
  input (memory per connection stays bounded);
- auth/sasl.py: every mechanism ``create_mechanism`` makes, fed random or
  mutated client messages, only ever returns steps (its documented failure
  is ``Failed(reason)``), finishes within a bounded number of steps, and
  never reports success for a made-up proof;
- mime/: the parser never raises over mutated corpus messages, and what it
  produces can be rendered and sectioned.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from mailbag.auth.sasl import (
    ALL_MECHANISMS,
    Cancel,
    Challenge,
    Done,
    Failed,
    MechanismContext,
    NeedScramCredential,
    SaslDecodeError,
    Verified,
    VerifyToken,
    create_mechanism,
    decode_client_response,
)
from mailbag.auth.scram import ScramMechanism, fake_credential, make_credential
from mailbag.mime.parse import parse_message
from mailbag.mime.sections import UnknownEncoding, binary_section, section_bytes
from mailbag.mime.text import header_values, search_text
from mailbag.wire.commands import (
    AuthLine,
    Command,
    IdleDone,
    NeedContinuation,
    ProtocolError,
    Section,
)
from mailbag.wire.parser import CommandParser, Limits

CORPUS = Path(__file__).resolve().parents[1] / "data" / "messages"

# ------------------------------------------------------------------ mutation


def mutate(seed: bytes, ops: list[tuple[int, int, int]], pieces: list[bytes]) -> bytes:
    """Apply (kind, position, argument) edits: flip, insert a piece, delete,
    duplicate a range, truncate."""
    data = bytearray(seed)
    for kind, pos, arg in ops:
        n = len(data)
        at = pos % (n + 1)
        if kind == 0 and n:
            data[at % n] ^= 1 << (arg % 8)
        elif kind == 1:
            data[at:at] = pieces[arg % len(pieces)]
        elif kind == 2:
            del data[at:at + 1 + arg % 64]
        elif kind == 3 and n:
            chunk = data[at:at + 1 + arg % 256]
            data[at:at] = chunk * (1 + arg % 4)
        elif kind == 4:
            del data[at:]
        elif kind == 5:
            data[at:at] = bytes([arg % 256])
    return bytes(data)


ops = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 1 << 20), st.integers(0, 1 << 16)), max_size=12
)

# ---------------------------------------------------------------------- wire

WIRE_SEEDS = [
    b"a LOGIN alice secret\r\n",
    b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
    b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    b"a SELECT INBOX (CONDSTORE)\r\n",
    b"a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.100> BINARY[1.2])\r\n",
    b"a UID STORE 1,3:5 +FLAGS.SILENT (\\Seen $Junk)\r\n",
    b"a SEARCH CHARSET UTF-8 OR (FROM {3}\r\nbob) NOT (SINCE 1-Jan-2020 LARGER 10)\r\n",
    b"a APPEND INBOX (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {10+}\r\n0123456789\r\n",
    b"a APPEND INBOX CATENATE (URL \"/INBOX;UID=1/;SECTION=1\" TEXT {3}\r\nabc)\r\n",
    b"a LIST \"\" (\"*\" %) RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES))\r\n",
    b"a IDLE\r\nDONE\r\n",
    b"a UID SORT (REVERSE ARRIVAL) UTF-8 ALL\r\n",
    b"a UID THREAD REFERENCES UTF-8 SUBJECT \"x\"\r\n",
    b"a SELECT INBOX (QRESYNC (1 2 1:10 (1:5 1:5)))\r\n",
    b"a ENABLE UTF8=ACCEPT CONDSTORE\r\n",
    b"a STARTTLS\r\nb NOOP\r\n",
    b"a APPEND INBOX ~{5}\r\n\x00\x01\x02\x03\x04\r\n",
]
WIRE_PIECES = [
    b"\r\n", b"\n", b"\r", b" ", b"(", b")", b"[", b"]", b"{", b"}", b"{0}\r\n", b"{5}\r\n",
    b"{9999999999}\r\n", b"{3+}\r\nabc", b"~{2}\r\n\x00\x00", b"\"", b"\\", b"*", b"%",
    b"\x00", b"\xff", b"NIL", b"BODY[", b"<0.5>", b"1:*", b"$", b"UID ", b"DONE\r\n",
    b"a" * 300,
]

SMALL = Limits(max_line=200, max_literal=50, max_nesting=4, max_command_size=300)
PRE_AUTH = Limits.pre_auth()
EVENTS = (Command, NeedContinuation, ProtocolError, AuthLine, IdleDone)

# What the session may do between events (imap/session.py).
MODE_SWITCHES = ("none", "auth", "idle", "cancel", "discard")


def wire_input() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=600),
        st.tuples(st.lists(st.sampled_from(WIRE_SEEDS), min_size=1, max_size=4), ops).map(
            lambda t: mutate(b"".join(t[0]), t[1], WIRE_PIECES)
        ),
    )


def check_wire(data: bytes, cuts: list[int], switches: list[str], limits: Limits) -> None:
    p = CommandParser(limits)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    calls = 0
    k = 0
    for a, b in zip(points, points[1:], strict=False):
        p.feed(data[a:b])
        while True:
            calls += 1
            assert calls <= 4 * len(data) + 4 * len(points) + 20, "no progress"
            ev = p.next_event()
            if ev is None:
                break
            assert isinstance(ev, EVENTS), ev
            switch = switches[k % len(switches)] if switches else "none"
            k += 1
            if switch == "auth":
                p.expect_auth_line()
            elif switch == "idle":
                p.expect_idle_done()
            elif switch == "cancel" and isinstance(ev, NeedContinuation):
                p.cancel_literal()
            elif switch == "discard":
                p.discard_buffer()
        # Bounded memory: unread input never exceeds a line's worth.
        assert p.buffered <= limits.max_line + 2, (p.buffered, limits.max_line)


# ---------------------------------------------------------------------- SASL

# A context where every mechanism is offered.
ALL_OFFERED = MechanismContext(secure=True, tls_exporter=b"\x07" * 32, oauth=True)
SASL_PIECES = [
    b"n,,n=alice,r=abcdef", b"y,,n=alice,r=x", b"p=tls-exporter,,n=alice,r=x",
    b"p=tls-unique,,", b"n,a=bob,n=alice,r=x", b"m=ext,", b"c=biws,r={NONCE},p=AAAA",
    b"c=cD10bHMtZXhwb3J0ZXIsLAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=,r={NONCE},p=",
    b"c=eSws,r={NONCE},p=", b"n,a=alice,\x01auth=Bearer abc.def.ghi\x01\x01",
    b"user=alice\x01auth=Bearer x\x01\x01", b"\x00alice\x00pw", b"authz\x00alice\x00pw",
    b"\x01", b"=", b",", b"\x00", b"\xff", b"==", b"=2C", b"=3D", b"r=", b"{NONCE}",
]
# Known credential for alice (a real SCRAM secret, so the provide path with
# known=True is exercised too).
_ALICE = make_credential(b"alice-pw", 4096)


def sasl_messages() -> st.SearchStrategy[list[bytes]]:
    one = st.one_of(
        st.binary(max_size=120),
        st.tuples(st.sampled_from(SASL_PIECES), ops).map(
            lambda t: mutate(t[0], t[1], SASL_PIECES)
        ),
    )
    return st.lists(one, max_size=6)


def check_sasl(name: str, initial: bytes | None, messages: list[bytes], known: bool,
               reject: bool) -> None:
    mech = create_mechanism(name, ALL_OFFERED)
    assert mech is not None, name
    step = mech.start(initial)
    nonce = b""
    queue = list(messages)
    for _ in range(len(messages) + 4):
        if isinstance(step, Challenge):
            if b"r=" in step.data:
                nonce = step.data.split(b"r=", 1)[1].split(b",", 1)[0]
            if not queue:
                return                            # the client went away
            step = mech.step(queue.pop(0).replace(b"{NONCE}", nonce))
        elif isinstance(step, NeedScramCredential):
            assert isinstance(mech, ScramMechanism)
            cred = _ALICE if known else fake_credential(step.authcid, 4096)
            step = mech.provide(cred, known)
        elif isinstance(step, VerifyToken):
            if not reject:
                return                            # accepted: the exchange is over
            step = mech.rejected("bad-signature")  # type: ignore[attr-defined]
        elif isinstance(step, Failed):
            assert isinstance(step.reason, str) and step.reason
            break
        elif isinstance(step, Done):
            assert name in ("PLAIN", "LOGIN"), (name, step)
            break
        else:
            # A made-up proof never verifies.
            assert not isinstance(step, Verified), step
            raise AssertionError(f"unexpected step {step!r}")
    else:
        raise AssertionError(f"{name}: exchange did not end")
    # Once finished, anything more the client sends is refused, not a crash.
    after = mech.step(b"more")
    assert isinstance(after, Failed), after


def check_decode(line: bytes) -> None:
    try:
        out = decode_client_response(line)
    except SaslDecodeError:
        return
    assert isinstance(out, (bytes, Cancel))


MECHANISMS = ALL_MECHANISMS

# ---------------------------------------------------------------------- MIME

MIME_PIECES = [
    b"\r\n", b"\n", b"\r\n\r\n", b"\x00", b"\xff", b"--", b"--b", b"--b--", b"boundary=",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"=?utf-8?b?", b"?=", b"=\r\n", b"=Z", b";", b"*0*=", b"''", b"%FF", b"\"", b"(", b"<",
    b"\t", b" ", b":", b"\xc3\xa9", b"=" * 50,
]


def corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]


_CORPUS = corpus()


def mime_input() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.tuples(st.sampled_from(_CORPUS), ops).map(lambda t: mutate(t[0], t[1], MIME_PIECES)),
        st.tuples(st.sampled_from(_CORPUS), st.sampled_from(_CORPUS), st.integers(0, 1 << 20))
        .map(lambda t: t[0][: t[2] % (len(t[0]) + 1)] + t[1][t[2] % (len(t[1]) + 1):]),
    )


def check_mime(raw: bytes, part: tuple[int, ...]) -> None:
    msg = parse_message(raw)
    assert isinstance(msg.envelope, bytes) or msg.envelope is not None
    assert msg.bodystructure is not None and msg.body is not None
    for text in (None, "HEADER", "TEXT", "MIME"):
        if text == "MIME" and not part:
            continue
        data = section_bytes(raw, msg, Section(part=part, text=text))  # type: ignore[arg-type]
        assert data is None or isinstance(data, bytes)
    try:
        binary_section(raw, msg, part or (1,))
    except UnknownEncoding:
        pass
    search_text(raw, msg)
    header_values(raw, msg, b"subject")
    assert len(msg.preview) <= 200
