"""Interop with curl's IMAP client (libcurl) against the real server.

Proves that curl can list mailboxes and download a message over implicit TLS
(imaps://, self-signed certificate accepted with -k) byte for byte, and that a
plain imap:// session works with a section URL (;SECTION=TEXT) and with a
custom command (-X 'UID FETCH ...'), as used by scripts that poke servers.
"""

from __future__ import annotations

import imaplib
import shutil
import subprocess

import pytest

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl binary not installed (apt-get install curl)")

HEADER = (b"From: Dora <dora@example.org>\r\n"
          b"To: alice@example.org\r\n"
          b"Subject: fetched by curl\r\n"
          b"Date: Wed, 04 Mar 2026 08:00:00 +0000\r\n"
          b"Message-ID: <c1@example.org>\r\n"
          b"\r\n")
BODY = (b"First line of the text.\r\n"
        b"Second line, with an 8-bit-free payload: ~!@#$%^&*()\r\n"
        b".\r\n"
        b"Last line after a lone dot.\r\n")
MSG = HEADER + BODY
MSG2 = HEADER.replace(b"fetched by curl", b"second one") + b"Another body.\r\n"


@pytest.fixture(scope="module")
def mailbox(server):
    """A CurlBox mailbox holding MSG as UID 1 and MSG2 as UID 2."""
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    c.login("alice", "alice-pw")
    c.create("CurlBox")
    for m in (MSG, MSG2):
        typ, data = c.append("CurlBox", None, None, m)
        assert typ == "OK"
    c.select("CurlBox")
    typ, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"1", b"2"]
    c.logout()
    return "CurlBox"


def curl(*args: str) -> bytes:
    r = subprocess.run([CURL, "--silent", "--show-error", "--max-time", "20",
                        "--user", "alice:alice-pw", *args],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 0, f"curl {args} exited {r.returncode}: {r.stderr!r}"
    return r.stdout


def test_imaps_list_folders(server, mailbox):
    out = curl("-k", f"imaps://127.0.0.1:{server.imaps_port}/")
    lines = out.splitlines()
    assert all(line.startswith(b"* LIST ") for line in lines), lines
    names = {line.rsplit(b" ", 1)[-1].strip(b'"') for line in lines}
    assert {b"INBOX", b"Drafts", b"Sent", b"Trash", b"CurlBox"} <= names


def test_imaps_fetch_message_is_byte_identical(server, mailbox):
    out = curl("-k", f"imaps://127.0.0.1:{server.imaps_port}/{mailbox};UID=1")
    assert out == MSG
    out = curl("-k", f"imaps://127.0.0.1:{server.imaps_port}/{mailbox};UID=2")
    assert out == MSG2


def test_imaps_requires_valid_login(server, mailbox):
    r = subprocess.run([CURL, "--silent", "--max-time", "20", "-k", "--user", "alice:nope",
                        f"imaps://127.0.0.1:{server.imaps_port}/{mailbox};UID=1"],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 67  # CURLE_LOGIN_DENIED
    assert MSG not in r.stdout


def test_plain_imap_section_text(server, mailbox):
    out = curl(f"imap://127.0.0.1:{server.imap_port}/{mailbox};UID=1;SECTION=TEXT")
    assert out == BODY
    out = curl(f"imap://127.0.0.1:{server.imap_port}/{mailbox};UID=1;SECTION=HEADER")
    assert out == HEADER


def test_plain_imap_custom_uid_fetch(server, mailbox):
    # With -X curl sends the command after SELECT (from the URL path) and writes
    # only the untagged "*" lines to stdout; the literal's lines show up in the
    # -v transcript ("< " prefix), so check both.
    r = subprocess.run([CURL, "-v", "--silent", "--max-time", "20", "--user", "alice:alice-pw",
                        "-X", "UID FETCH 1 (UID BODY.PEEK[TEXT])",
                        f"imap://127.0.0.1:{server.imap_port}/{mailbox}"],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"* 1 FETCH (")
    assert b"UID 1" in r.stdout
    assert r.stdout.rstrip().endswith(b"BODY[TEXT] {%d}" % len(BODY))
    transcript = r.stderr.replace(b"\r\n", b"\n").splitlines()
    (i,) = [n for n, line in enumerate(transcript)
            if line.startswith(b"> ") and line.endswith(b" UID FETCH 1 (UID BODY.PEEK[TEXT])")]
    tag = transcript[i].split()[1]
    body_lines = [line.removeprefix(b"< ") for line in transcript[i + 2:i + 2 + BODY.count(b"\n")]]
    assert body_lines == BODY.replace(b"\r\n", b"\n").splitlines()
    assert transcript[i + 2 + len(body_lines)] == b"< )"
    assert transcript[i + 3 + len(body_lines)].startswith(b"< " + tag + b" OK")


def test_plain_imap_custom_search(server, mailbox):
    out = curl("-X", 'UID SEARCH SUBJECT "second one"',
               f"imap://127.0.0.1:{server.imap_port}/{mailbox}")
    assert out.split() == [b"*", b"SEARCH", b"2"], out


def test_search_url_and_partial_fetch(server, mailbox):
    # RFC 5092 URL forms curl supports: ?<search> runs SEARCH, ;PARTIAL=o.n a partial FETCH.
    out = curl(f"imap://127.0.0.1:{server.imap_port}/{mailbox}?SUBJECT%20%22fetched%20by%22")
    assert out.split() == [b"*", b"SEARCH", b"1"], out
    out = curl("-k", f"imaps://127.0.0.1:{server.imaps_port}/{mailbox};UID=1;PARTIAL=6.4")
    assert out == MSG[6:10]
    out = curl(f"imap://127.0.0.1:{server.imap_port}/{mailbox};UID=1;SECTION=TEXT;PARTIAL=0.10")
    assert out == BODY[:10]


def test_fetch_missing_uid_fails(server, mailbox):
    r = subprocess.run([CURL, "--silent", "--max-time", "20", "--user", "alice:alice-pw",
                        f"imap://127.0.0.1:{server.imap_port}/{mailbox};UID=99"],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode != 0 and r.stdout == b""
