"""mbox import (From_ dates, mboxrd unquoting, Status/X-Status/X-Keywords
flags, header stripping) and the mbox export -> import round trip."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime

from mailbag.transfer import mbox

MBOX = (
    b"From alice@example.org Wed Jan  3 01:05:34 1996\n"
    b"From: a@example.org\nSubject: one\nStatus: RO\nX-Status: AF\n"
    b"X-Keywords: $Label1 work,Junk\nX-UID: 7\n\n"
    b"body line\n>From quoted once\n>>From quoted twice\nFrom the middle of a line\n\n"
    b"From bob@example.org Thu Mar  5 10:00:00 2026 +0100\n"
    b"From: b@example.org\nSubject: two\nMessage-ID: <two@x>\n\nsecond\n\n"
    b"From MAILER-DAEMON Fri Mar  6 09:00:00 2026\n"
    b"From: c@example.org\r\nSubject: crlf\r\nX-Status: T\r\n\r\nthird\r\n"
)


def test_from_line_dates():
    assert mbox.parse_from_line(b"From a@b Wed Jan  3 01:05:34 1996\n") == datetime(
        1996, 1, 3, 1, 5, 34, tzinfo=UTC)
    when = mbox.parse_from_line(b"From x Sat Jan 03 01:05:34 +0200 2015\n")
    assert when is not None and when.utcoffset().total_seconds() == 7200
    assert mbox.parse_from_line(b"From here on, nothing is a date\n") is None
    line = mbox.from_line("a@b", datetime(1996, 1, 3, 1, 5, 34, tzinfo=UTC))
    assert line == b"From a@b Wed Jan  3 01:05:34 1996\n"
    assert mbox.parse_from_line(line) == datetime(1996, 1, 3, 1, 5, 34, tzinfo=UTC)


def test_mboxrd_quoting_is_reversible():
    body = b"From x\n>From y\n>>From z\nFromage\n"
    quoted = mbox.quote(body)
    assert quoted == b">From x\n>>From y\n>>>From z\nFromage\n"
    assert b"".join(mbox.unquote_line(ln) for ln in quoted.splitlines(keepends=True)) == body


def test_mbox_import(mailbag, tmp_path):
    path = tmp_path / "in.mbox"
    path.write_bytes(MBOX)
    r = mailbag.cli("import", "mbox", str(path), "--user", "alice", "--folder", "Old")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "imported 3" in r.stdout
    got = mailbag.snapshot("alice")
    assert list(got) == ["Old"]
    one, two, three = got["Old"]
    # Bookkeeping headers gone (as Dovecot hides them), CRLF, one ">" less.
    assert one.data == (b"From: a@example.org\r\nSubject: one\r\n\r\nbody line\r\n"
                        b"From quoted once\r\n>From quoted twice\r\nFrom the middle of a line\r\n")
    assert one.flags == {"\\seen", "\\answered", "\\flagged", "$label1", "work", "junk"}
    assert one.internaldate == int(datetime(1996, 1, 3, 1, 5, 34, tzinfo=UTC).timestamp())
    assert two.flags == frozenset()
    assert two.internaldate == int(datetime(2026, 3, 5, 9, 0, 0, tzinfo=UTC).timestamp())
    assert three.data == b"From: c@example.org\r\nSubject: crlf\r\n\r\nthird\r\n"
    assert three.flags == {"\\draft"}


def test_keep_headers(mailbag, tmp_path):
    path = tmp_path / "in.mbox"
    path.write_bytes(MBOX)
    mailbag.cli("import", "mbox", str(path), "--user", "alice", "--keep-headers")
    first = mailbag.snapshot("alice")["INBOX"][0]
    assert b"Status: RO\r\n" in first.data and b"X-UID: 7\r\n" in first.data
    assert "\\seen" in first.flags


def test_mbox_export_reimport_round_trip(mailbag, tmp_path):
    path = tmp_path / "in.mbox"
    path.write_bytes(MBOX)
    mailbag.cli("import", "mbox", str(path), "--user", "alice", "--folder", "Old/Nested")
    mailbag.cli("import", "mbox", str(path), "--user", "alice")
    out = tmp_path / "export"
    r = mailbag.cli("export", "--user", "alice", "--format", "mbox", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "INBOX.mbox").is_file() and (out / "Old" / "Nested.mbox").is_file()
    # Another mbox reader agrees on the message count and the flags.
    box = mailbox.mbox(str(out / "INBOX.mbox"))
    assert len(box) == 3
    # Python's reader: R read, O old, A answered, F flagged, T draft.
    assert [set(m.get_flags()) for m in box] == [set("ROAF"), set("O"), set("OT")]
    box.close()

    r = mailbag.cli("import", "mbox", str(out), "--user", "bob")
    assert r.returncode == 0, r.stdout + r.stderr
    alice, bob = mailbag.snapshot("alice"), mailbag.snapshot("bob")
    assert set(alice) == {"INBOX", "Old/Nested"}
    assert bob == alice
