"""Bad commands give a ProtocolError naming the problem, with the right tag."""

from __future__ import annotations

import pytest

from mailbag.wire.commands import ProtocolError

from .helpers import one

BAD: list[tuple[bytes, str | None, str]] = [
    (b"a FOO", "a", "Unknown command FOO"),
    (b"a UID FOO 1", "a", "Unknown command UID FOO"),
    (b"a UID LIST", "a", "Unknown command UID LIST"),
    (b"+ NOOP", None, "tag"),
    (b"* NOOP", None, "tag"),
    (b"a(b NOOP", None, "tag"),
    (b"a", "a", "space after the tag"),
    (b"a ", "a", "command name"),
    (b"a NOOP extra", "a", "NOOP: unexpected extra arguments"),
    (b"a LOGIN fred", "a", "password"),
    (b"a LOGIN", "a", "user name"),
    (b'a LOGIN "fred pw', "a", "unterminated quoted string"),
    (b'a LOGIN "fr\\ed" pw', "a", "backslash"),
    (b"a AUTHENTICATE PLAIN !!!", "a", "base64"),
    (b"a AUTHENTICATE PLAIN AGZy x", "a", "unexpected extra"),
    (b"a AUTHENTICATE PLAIN AGZ", "a", "invalid base64"),
    (b"a ENABLE", "a", "missing capability"),
    (b"a SELECT", "a", "mailbox"),
    (b"a SELECT INBOX (FOO)", "a", "unknown parameter FOO"),
    (b"a SELECT INBOX (QRESYNC (0 1))", "a", "must not be zero"),
    (b"a SELECT INBOX (QRESYNC (1))", "a", "space after the UIDVALIDITY"),
    (b"a CREATE x (FOO (\\Drafts))", "a", "unknown parameter"),
    (b"a RENAME x", "a", "new mailbox"),
    (b"a LIST (RECURSIVEMATCH) \"\" *", "a", "RECURSIVEMATCH"),
    (b"a LIST (BOGUS) \"\" *", "a", "unknown selection option BOGUS"),
    (b"a LIST \"\" * RETURN (BOGUS)", "a", "unknown RETURN option BOGUS"),
    (b"a LIST \"\" * FOO (X)", "a", "RETURN"),
    (b"a STATUS INBOX (FOO)", "a", "unknown item FOO"),
    (b"a STATUS INBOX ()", "a", "STATUS item"),
    (b"a STATUS INBOX", "a", "STATUS items"),
    (b"a APPEND INBOX", "a", "space before the message"),
    (b"a APPEND INBOX \"hello\"", "a", "date-time"),
    (b"a APPEND INBOX \"1-Jan-2000 00:00:00 +0000\" hello", "a", "literal"),
    (b"a APPEND INBOX (\\Seen", "a", "')' closing the flag list"),
    (b"a APPEND INBOX \"32-Foo-2000 00:00:00 +0000\" {1+}\r\nx", "a", "APPEND"),
    (b"a LOGIN ~{1+}\r\nx pw", "a", "literal8"),
    (b"a FETCH", "a", "sequence set"),
    (b"a FETCH 0 FLAGS", "a", "must not be zero"),
    (b"a FETCH 4294967296 FLAGS", "a", "out of range"),
    (b"a FETCH 1:x FLAGS", "a", "sequence set"),
    (b"a FETCH 1", "a", "space before the FETCH items"),
    (b"a FETCH 1 FOO", "a", "unknown item FOO"),
    (b"a FETCH 1 (FLAGS", "a", "')' closing the FETCH item list"),
    (b"a FETCH 1 BODY[0]", "a", "must not be zero"),
    (b"a FETCH 1 BODY[MIME]", "a", "MIME needs"),
    (b"a FETCH 1 BODY[FOO]", "a", "unknown section text FOO"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "a", "header field name"),
    (b"a FETCH 1 BODY[]<5>", "a", "'.'"),
    (b"a FETCH 1 BODY[]<0.0>", "a", "must not be zero"),
    (b"a FETCH 1 BODY.PEEK", "a", "'['"),
    (b"a FETCH 1 BINARY[TEXT]", "a", "section part number"),
    (b"a FETCH 1 FLAGS (VANISHED)", "a", "only allowed in UID FETCH"),
    (b"a UID FETCH 1 FLAGS (VANISHED)", "a", "requires CHANGEDSINCE"),
    (b"a FETCH 1 FLAGS (FOO 1)", "a", "unknown modifier FOO"),
    (b"a FETCH 1 PREVIEW (LAZY FOO)", "a", "unknown PREVIEW modifier"),
    (b"a STORE 1 FLAGS", "a", "space before the flags"),
    (b"a STORE 1 +FOO (\\Seen)", "a", "unknown item +FOO"),
    (b"a STORE 1 FLAGS (\\*)", "a", "flag"),
    (b"a STORE 1 (UNCHANGEDSINCE x) FLAGS ()", "a", "mod-sequence"),
    (b"a COPY 1", "a", "space before the mailbox"),
    (b"a MOVE 1:2", "a", "space before the mailbox"),
    (b"a UID EXPUNGE", "a", "UID set"),
    (b"a SEARCH", "a", "missing search criteria"),
    (b"a SEARCH FOO", "a", "unknown search key FOO"),
    (b"a SEARCH BEFORE 1-Foo-2000", "a", "month"),
    (b"a SEARCH BEFORE 31-Feb-2000", "a", "date"),
    (b"a SEARCH ON", "a", "space after ON"),
    (b"a SEARCH OR SEEN", "a", "second OR operand"),
    (b"a SEARCH (SEEN", "a", "')' closing"),
    (b"a SEARCH RETURN (FOO) ALL", "a", "unknown RETURN option FOO"),
    (b"a SEARCH LARGER -1", "a", "size"),
    (b"a SEARCH MODSEQ \"/foo\" all 5", "a", "/flags/"),
    (b"a SEARCH KEYWORD \\Seen", "a", "keyword"),
    (b"a ID (\"a\")", "a", "space after the ID field name"),
    (b"a ID FOO", "a", "NIL"),
]


@pytest.mark.parametrize(("line", "tag", "fragment"), BAD,
                         ids=[b[0][:40].decode("latin-1") for b in BAD])
def test_bad_command(line: bytes, tag: str | None, fragment: str) -> None:
    ev = one(line + b"\r\n")
    assert isinstance(ev, ProtocolError), ev
    assert ev.tag == tag
    assert ev.status == "BAD"
    assert not ev.fatal
    assert fragment.lower() in ev.message.lower(), ev.message


def test_empty_line_is_an_untagged_error() -> None:
    ev = one(b"\r\n")
    assert isinstance(ev, ProtocolError) and ev.tag is None


def test_error_does_not_stop_the_next_command() -> None:
    from mailbag.wire.commands import Noop

    from .helpers import events
    evs = events(b"a FOO\r\nb NOOP\r\n")
    assert isinstance(evs[0], ProtocolError)
    assert evs[1] == Noop("b")
