"""Interop with the imapclient library (PyPI) against the real server.

Proves that a high-level, widely used Python client can do a whole session
with mailbag over plain IMAP (loopback), STARTTLS and implicit TLS: login,
capabilities (IMAP4rev2 and IMAP4rev1), NAMESPACE, LIST with special-use
flags, CREATE/RENAME/DELETE, APPEND with flags and internal date, SELECT
(EXISTS/UIDVALIDITY/UIDNEXT), FETCH of ENVELOPE/BODYSTRUCTURE/BODY.PEEK[]/
RFC822.SIZE/INTERNALDATE/FLAGS, SEARCH (FROM, SUBJECT, UNSEEN, SINCE, BODY),
flag and keyword changes, COPY/MOVE with UIDPLUS COPYUID results, EXPUNGE and
IDLE woken by an APPEND on another connection.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time

import pytest

imapclient = pytest.importorskip("imapclient")
from imapclient import IMAPClient  # noqa: E402
from imapclient.response_types import Envelope  # noqa: E402

MSG1 = (b"From: Alice Example <alice@example.org>\r\n"
        b"To: Bob <bob@example.org>\r\n"
        b"Subject: quarterly report\r\n"
        b"Date: Mon, 02 Mar 2026 09:30:00 +0100\r\n"
        b"Message-ID: <q1@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"The numbers look like giraffes this quarter.\r\n")

MSG2 = (b"From: Carol <carol@example.net>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: lunch?\r\n"
        b"Date: Tue, 03 Mar 2026 12:00:00 +0000\r\n"
        b"Message-ID: <l2@example.net>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
        b"\r\n"
        b"--XYZ\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
        b"Pizza at noon?\r\n"
        b"--XYZ\r\n"
        b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n"
        b"AAECAw==\r\n"
        b"--XYZ--\r\n")

TZ = dt.timezone(dt.timedelta(hours=2))
DATE1 = dt.datetime(2020, 5, 17, 8, 15, 42, tzinfo=TZ)
DATE2 = dt.datetime(2024, 1, 9, 23, 1, 0, tzinfo=dt.UTC)


def client(server, user="alice", password="alice-pw") -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=10)
    c.login(user, password)
    return c


def flags(fs) -> set[bytes]:
    """Flags without \\Recent (an IMAP4rev1 session flag, not under test here)."""
    return set(fs) - {b"\\Recent"}


def no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_capabilities_and_namespace(server):
    c = client(server)
    caps = c.capabilities()
    assert b"IMAP4REV2" in caps and b"IMAP4REV1" in caps
    for cap in (b"UIDPLUS", b"MOVE", b"IDLE", b"NAMESPACE", b"SPECIAL-USE"):
        assert cap in caps
    ns = c.namespace()
    assert ns.personal and ns.personal[0][0] in ("", b"")
    assert ns.personal[0][1] in ("/", b"/")
    c.logout()


def test_list_folders_with_special_use(server):
    c = client(server)
    folders = {name: flags for flags, _delim, name in c.list_folders()}
    assert "INBOX" in folders
    expected = {"Drafts": b"\\Drafts", "Sent": b"\\Sent", "Trash": b"\\Trash",
                "Junk": b"\\Junk", "Archive": b"\\Archive"}
    for name, use in expected.items():
        assert use in folders[name], (name, folders[name])
    assert c.find_special_folder(b"\\Sent") == "Sent"
    assert c.find_special_folder(b"\\Trash") == "Trash"
    c.logout()


def test_create_rename_delete_folder(server):
    c = client(server)
    c.create_folder("Projects")
    c.create_folder("Projects/Alpha")
    assert c.folder_exists("Projects/Alpha")
    c.rename_folder("Projects/Alpha", "Projects/Beta")
    assert not c.folder_exists("Projects/Alpha")
    assert c.folder_exists("Projects/Beta")
    names = [n for _f, _d, n in c.list_folders("Projects")]
    assert "Projects/Beta" in names and "Projects/Alpha" not in names
    c.delete_folder("Projects/Beta")
    assert not c.folder_exists("Projects/Beta")
    with pytest.raises(IMAPClient.Error):
        c.select_folder("Projects/Beta")
    c.delete_folder("Projects")
    assert not c.folder_exists("Projects")
    c.logout()


def test_append_select_fetch(server):
    c = client(server)
    c.create_folder("Fetch")
    r1 = c.append("Fetch", MSG1, flags=(b"\\Flagged", b"$Work"), msg_time=DATE1)
    r2 = c.append("Fetch", MSG2, msg_time=DATE2)
    assert b"APPENDUID" in r1 and b"APPENDUID" in r2
    info = c.select_folder("Fetch")
    assert info[b"EXISTS"] == 2
    assert isinstance(info[b"UIDVALIDITY"], int) and info[b"UIDVALIDITY"] > 0
    uids = c.search("ALL")
    assert len(uids) == 2 and uids[0] < uids[1]
    assert info[b"UIDNEXT"] > uids[1]
    u1, u2 = uids

    data = c.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]", "RFC822.SIZE",
                          "INTERNALDATE", "FLAGS"])
    d1, d2 = data[u1], data[u2]
    assert d1[b"BODY[]"] == MSG1 and d2[b"BODY[]"] == MSG2
    assert d1[b"RFC822.SIZE"] == len(MSG1) and d2[b"RFC822.SIZE"] == len(MSG2)
    # imapclient normalises INTERNALDATE to naive local time by default; compare instants.
    got = d1[b"INTERNALDATE"]
    got = got.astimezone() if got.tzinfo else got.replace(tzinfo=dt.datetime.now().astimezone().tzinfo)
    assert got == DATE1
    got2 = d2[b"INTERNALDATE"]
    got2 = got2.astimezone() if got2.tzinfo else got2.replace(tzinfo=dt.datetime.now().astimezone().tzinfo)
    assert got2 == DATE2
    assert flags(d1[b"FLAGS"]) == {b"\\Flagged", b"$Work"}
    assert flags(d2[b"FLAGS"]) == set()

    env: Envelope = d1[b"ENVELOPE"]
    assert env.subject == b"quarterly report"
    assert env.from_[0].name == b"Alice Example"
    assert env.from_[0].mailbox == b"alice" and env.from_[0].host == b"example.org"
    assert env.to[0].mailbox == b"bob"
    assert env.message_id == b"<q1@example.org>"
    assert env.date is not None and env.date.year == 2026

    bs1 = d1[b"BODYSTRUCTURE"]
    assert bs1[0].lower() == b"text" and bs1[1].lower() == b"plain"
    assert not bs1.is_multipart
    bs2 = d2[b"BODYSTRUCTURE"]
    assert bs2.is_multipart
    parts, subtype = bs2[0], bs2[1]
    assert subtype.lower() == b"mixed"
    assert parts[0][0].lower() == b"text" and parts[0][1].lower() == b"plain"
    assert parts[1][0].lower() == b"application" and parts[1][5].lower() == b"base64"

    # BODY.PEEK did not set \Seen; a non-peek BODY[] fetch does.
    assert b"\\Seen" not in c.get_flags([u1])[u1]
    full = c.fetch([u2], ["BODY[1]"])[u2]
    assert full[b"BODY[1]"] == b"Pizza at noon?"
    assert b"\\Seen" in c.get_flags([u2])[u2]
    c.logout()


def test_search(server):
    c = client(server)
    c.create_folder("Search")
    c.append("Search", MSG1, flags=(b"\\Seen",), msg_time=DATE1)
    c.append("Search", MSG2, msg_time=DATE2)
    c.select_folder("Search", readonly=True)
    u1, u2 = c.search("ALL")
    assert c.search(["FROM", "carol"]) == [u2]
    assert c.search(["FROM", "alice@example.org"]) == [u1]
    assert c.search(["SUBJECT", "quarterly"]) == [u1]
    assert c.search(["SUBJECT", "nothing-like-this"]) == []
    assert c.search("UNSEEN") == [u2]
    assert c.search(["SINCE", dt.date(2023, 1, 1)]) == [u2]
    assert c.search(["SINCE", dt.date(2019, 1, 1)]) == [u1, u2]
    assert c.search(["BODY", "giraffes"]) == [u1]
    assert c.search(["BODY", "pizza"]) == [u2]
    assert c.search(["NOT", "SEEN", "SUBJECT", "lunch"]) == [u2]
    c.logout()


def test_flags_and_keywords(server):
    c = client(server)
    c.create_folder("Flags")
    c.append("Flags", MSG1)
    c.select_folder("Flags")
    (uid,) = c.search("ALL")
    r = c.add_flags([uid], [b"\\Seen", b"$Important"])
    assert flags(r[uid]) == {b"\\Seen", b"$Important"}
    r = c.add_flags([uid], [b"\\Answered"], silent=False)
    assert flags(r[uid]) == {b"\\Seen", b"$Important", b"\\Answered"}
    r = c.remove_flags([uid], [b"$Important"])
    assert flags(r[uid]) == {b"\\Seen", b"\\Answered"}
    r = c.set_flags([uid], [b"\\Flagged", b"Custom_kw"])
    assert flags(r[uid]) == {b"\\Flagged", b"Custom_kw"}
    assert flags(c.get_flags([uid])[uid]) == {b"\\Flagged", b"Custom_kw"}
    assert c.search(["KEYWORD", "Custom_kw"]) == [uid]
    assert c.search(["UNKEYWORD", "Custom_kw"]) == []
    # Keywords and flags survive reselecting (they are stored, not session state).
    c.unselect_folder()
    info = c.select_folder("Flags")
    assert b"Custom_kw" in info[b"FLAGS"] or b"Custom_kw" in info.get(b"PERMANENTFLAGS", ())
    assert flags(c.get_flags([uid])[uid]) == {b"\\Flagged", b"Custom_kw"}
    c.logout()


def test_copy_move_expunge(server):
    c = client(server)
    for name in ("Src", "Dst"):
        c.create_folder(name)
    for _ in range(3):
        c.append("Src", MSG1)
    c.select_folder("Src")
    src_uids = c.search("ALL")
    assert len(src_uids) == 3
    dst_validity = c.folder_status("Dst", ["UIDVALIDITY"])[b"UIDVALIDITY"]

    c._imap.untagged_responses.pop("COPYUID", None)
    c.copy(src_uids[:2], "Dst")
    # imaplib files the tagged OK's response code "[COPYUID v src dst]" under COPYUID.
    (copyuid,) = c._imap.untagged_responses.pop("COPYUID")
    assert int(copyuid.split()[0]) == dst_validity
    c.move([src_uids[2]], "Dst")
    assert c.search("ALL") == src_uids[:2]
    assert c.select_folder("Dst")[b"EXISTS"] == 3
    dst_uids = c.search("ALL")
    assert len(dst_uids) == 3 and len(set(dst_uids)) == 3
    for u, body in c.fetch(dst_uids, ["BODY.PEEK[]"]).items():
        assert body[b"BODY[]"] == MSG1, u

    c.set_flags(dst_uids[:1], [b"\\Deleted"])
    c.expunge()
    assert c.search("ALL") == dst_uids[1:]
    c.add_flags(dst_uids[1:2], [b"\\Deleted"])
    c.uid_expunge(dst_uids[1:2])
    assert c.search("ALL") == dst_uids[2:]
    assert c.folder_status("Src", ["MESSAGES"])[b"MESSAGES"] == 2
    c.logout()


def test_copy_and_move_report_copyuid(server):
    """UIDPLUS (RFC 4315): COPY's tagged OK and MOVE's untagged OK carry COPYUID."""
    c = client(server)
    c.create_folder("CU-src")
    c.create_folder("CU-dst")
    c.append("CU-src", MSG1)
    c.append("CU-src", MSG2)
    c.select_folder("CU-src")
    u1, u2 = c.search("ALL")
    validity = c.folder_status("CU-dst", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    # imapclient returns None for UID COPY (imaplib keeps only the FETCH
    # responses), but imaplib files every "[COPYUID v src dst]" response code,
    # tagged (COPY) or untagged (MOVE), under the COPYUID key.
    c._imap.untagged_responses.pop("COPYUID", None)
    c.copy([u1], "CU-dst")
    (copied,) = c._imap.untagged_responses.pop("COPYUID")
    v, src, dst = copied.split()
    assert (int(v), int(src)) == (validity, u1)
    c.move([u2], "CU-dst")
    (moved,) = c._imap.untagged_responses.pop("COPYUID")
    v, src, dst2 = moved.split()
    assert (int(v), int(src)) == (validity, u2)
    assert int(dst2) > int(dst)
    assert c.search("ALL") == [u1]
    c.select_folder("CU-dst")
    bodies = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
    assert bodies[int(dst)][b"BODY[]"] == MSG1
    assert bodies[int(dst2)][b"BODY[]"] == MSG2
    c.logout()


def test_idle_woken_by_append_from_other_connection(server):
    c = client(server)
    c.create_folder("IdleBox")
    c.select_folder("IdleBox")
    c.idle()

    def deliver():
        time.sleep(0.3)
        other = client(server, "alice", "alice-pw")
        other.append("IdleBox", MSG2)
        other.logout()

    t = threading.Thread(target=deliver)
    t.start()
    start = time.monotonic()
    responses = []
    while time.monotonic() - start < 8 and not responses:
        responses = c.idle_check(timeout=1)
    t.join()
    text, _ = c.idle_done()
    assert (1, b"EXISTS") in responses, responses
    assert c.search("ALL") != []
    c.logout()


def test_starttls_session(server):
    c = IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=10)
    assert b"STARTTLS" in c.capabilities()
    c.starttls(no_verify())
    assert c._imap.sock.version() is not None  # the socket is now TLS
    c.login("bob", "bob-pw")
    c.select_folder("INBOX")
    c.append("INBOX", MSG1)
    uids = c.search(["SUBJECT", "quarterly"])
    assert uids
    assert c.fetch(uids[-1:], ["BODY.PEEK[]"])[uids[-1]][b"BODY[]"] == MSG1
    c.logout()


def test_implicit_tls_session(server):
    c = IMAPClient("127.0.0.1", port=server.imaps_port, ssl=True,
                   ssl_context=no_verify(), timeout=10)
    caps = c.capabilities()
    assert b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps
    c.login("bob", "bob-pw")
    assert b"IMAP4REV2" in c.capabilities()
    c.create_folder("OverTLS")
    c.append("OverTLS", MSG2, flags=(b"\\Seen",))
    info = c.select_folder("OverTLS")
    assert info[b"EXISTS"] == 1
    (uid,) = c.search("SEEN")
    assert c.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == MSG2
    c.logout()


def test_international_folder_names(server):
    """imapclient encodes folder names in modified UTF-7 (RFC 3501 §5.1.3)."""
    c = client(server)
    name = "Entwürfe/Ärger & 日本"
    c.create_folder(name)
    assert c.folder_exists(name)
    c.append(name, MSG1)
    assert c.folder_status(name, ["MESSAGES"])[b"MESSAGES"] == 1
    names = [n for _f, _d, n in c.list_folders()]
    assert name in names
    top = {n: f for f, _d, n in c.list_folders(pattern="%")}
    assert b"\\HasChildren" in top["Entwürfe"]
    c.rename_folder(name, "Entwürfe/Ölung")
    assert c.select_folder("Entwürfe/Ölung")[b"EXISTS"] == 1
    c.close_folder()
    c.delete_folder("Entwürfe/Ölung")
    assert not c.folder_exists("Entwürfe/Ölung")
    c.logout()


def test_utf8_search_and_partial_fetch(server):
    c = client(server)
    c.create_folder("Intl")
    msg = ("From: Zoë <zoe@example.org>\r\nTo: alice@example.org\r\n"
           "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n"
           "Schöne Grüße.\r\n").encode()
    c.append("Intl", msg)
    c.append("Intl", MSG1)
    c.select_folder("Intl")
    u1, u2 = c.search("ALL")
    assert c.search(["SUBJECT", "Grüße"], charset="UTF-8") == [u1]
    assert c.search(["BODY", "schöne"], charset="UTF-8") == [u1]
    assert c.search(["SUBJECT", "Köln"], charset="UTF-8") == [u1]
    env = c.fetch([u1], ["ENVELOPE"])[u1][b"ENVELOPE"]
    assert env.subject == b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?="
    part = c.fetch([u2], ["BODY.PEEK[]<6.5>"])[u2]
    assert part[b"BODY[]<6>"] == MSG1[6:11]
    hdr = c.fetch([u2], ["BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]"])[u2]
    assert hdr[b"BODY[HEADER.FIELDS (SUBJECT FROM)]"] == (
        b"From: Alice Example <alice@example.org>\r\nSubject: quarterly report\r\n\r\n")
    c.logout()


def test_idle_reports_flag_changes_and_expunges(server):
    c = client(server)
    c.create_folder("IdleFlags")
    c.append("IdleFlags", MSG1)
    c.append("IdleFlags", MSG2)
    c.select_folder("IdleFlags")
    c.idle()
    other = client(server)
    other.select_folder("IdleFlags")
    u1, u2 = other.search("ALL")
    other.add_flags([u2], [b"\\Answered"])
    seen = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not any(r[1] == b"FETCH" for r in seen):
        seen += c.idle_check(timeout=1)
    fetches = [r for r in seen if r[1] == b"FETCH"]
    assert fetches and fetches[0][0] == 2, seen
    assert b"\\Answered" in fetches[0][2][fetches[0][2].index(b"FLAGS") + 1]
    other.set_flags([u1], [b"\\Deleted"])
    other.expunge()
    seen = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and (1, b"EXPUNGE") not in seen:
        seen += c.idle_check(timeout=1)
    assert (1, b"EXPUNGE") in seen, seen
    c.idle_done()
    assert c.search("ALL") == [u2]
    other.logout()
    c.logout()


def test_create_makes_superior_names(server):
    """RFC 9051 §6.3.4: CREATE "foo/bar/zap" SHOULD create foo and foo/bar too."""
    c = client(server)
    c.create_folder("Deep/er/est")
    assert c.folder_exists("Deep/er/est")
    assert c.folder_exists("Deep") and c.folder_exists("Deep/er")
    c.select_folder("Deep/er")
    c.logout()
