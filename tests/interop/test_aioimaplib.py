"""Interop with aioimaplib (asyncio IMAP client) against the real server.

Proves a short asyncio session works end to end: greeting and capabilities,
LOGIN, CREATE/SELECT, APPEND with flags (APPENDUID), FETCH of the literal body
byte for byte, UID SEARCH, and IDLE being woken by an APPEND made on a second
aioimaplib connection (the push arrives as "* n EXISTS" while idling).
"""

from __future__ import annotations

import asyncio
import re

import pytest

aioimaplib = pytest.importorskip("aioimaplib")

MSG = (b"From: Hank <hank@example.org>\r\nTo: alice@example.org\r\n"
       b"Subject: async hello\r\nDate: Sat, 07 Mar 2026 10:00:00 +0000\r\n"
       b"Message-ID: <aio@example.org>\r\n\r\nSent from an event loop.\r\n")
MSG2 = MSG.replace(b"async hello", b"wake up").replace(b"<aio@", b"<aio2@")


async def connect(server, user="alice", password="alice-pw") -> aioimaplib.IMAP4:
    c = aioimaplib.IMAP4(host="127.0.0.1", port=server.imap_port, timeout=10)
    await c.wait_hello_from_server()
    r = await c.login(user, password)
    assert r.result == "OK", r
    return c


async def test_session_and_idle(server):
    c = await connect(server)
    assert c.has_capability("IMAP4rev2") and c.has_capability("IDLE")
    assert (await c.create("Async")).result == "OK"

    r = await c.append(MSG, mailbox="Async", flags=r"\Flagged")
    assert r.result == "OK", r
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", b" ".join(bytes(x) for x in r.lines))
    assert m is not None, r.lines
    uid = int(m.group(2))

    r = await c.select("Async")
    assert r.result == "OK"
    assert b"1 EXISTS" in r.lines

    r = await c.uid("fetch", str(uid), "(UID FLAGS BODY.PEEK[])")
    assert r.result == "OK", r
    literals = [bytes(x) for x in r.lines if isinstance(x, bytearray)]
    assert literals == [MSG]
    meta = b" ".join(bytes(x) for x in r.lines if not isinstance(x, bytearray))
    assert b"\\Flagged" in meta and b"UID %d" % uid in meta

    r = await c.uid_search("SUBJECT", '"async hello"')
    assert r.result == "OK" and r.lines[0].split()[-1] == b"%d" % uid

    # IDLE, woken by another connection's APPEND.
    other = await connect(server)
    idle = await c.idle_start(timeout=15)
    assert c.has_pending_idle()
    appended = asyncio.ensure_future(other.append(MSG2, mailbox="Async"))
    pushed = await asyncio.wait_for(c.wait_server_push(), timeout=10)
    assert (await appended).result == "OK"
    assert b"2 EXISTS" in pushed, pushed
    c.idle_done()
    r = await asyncio.wait_for(idle, timeout=10)
    assert r.result == "OK", r

    r = await c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert r.result == "OK"
    assert b"Subject: wake up\r\n\r\n" in [bytes(x) for x in r.lines if isinstance(x, bytearray)]

    await other.logout()
    assert (await c.logout()).result == "OK"
