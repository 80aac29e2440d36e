"""Crash safety: an acknowledged APPEND survives SIGKILL of the server.

A client pipelines many APPENDs with LITERAL+ literals (never waiting for a
reply) while a reader thread records each tagged OK and its APPENDUID. After
some acknowledgements the server is killed with SIGKILL in the middle of the
stream, then restarted on the same data directory and ports. The test proves:

* every UID the server acknowledged is present, with byte-identical content
  (UID FETCH BODY.PEEK[]) and the flags given at APPEND;
* nothing torn or foreign appears: every message in the mailbox is one that
  was sent, whole;
* UIDVALIDITY is unchanged and the mailbox is still usable: APPEND works and
  the new UID is above every UID handed out before the crash.

A second test does the same with pipelined UID MOVEs: every acknowledged move
is durable (gone from the source, in the target under its COPYUID with the
same bytes) and no message is lost or duplicated by a move cut in half.
"""

from __future__ import annotations

import hashlib
import imaplib
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import testserver

MAILBOX = "Crash"
ACKS_BEFORE_KILL = 40
MAX_MESSAGES = 5000


def message(i: int) -> bytes:
    # Distinct, varied sizes (some bigger than a typical socket read), checkable.
    filler = hashlib.sha256(b"%d" % i).hexdigest().encode()
    body = b"".join(b"%06d %s\r\n" % (n, filler) for n in range(1 + (i * 37) % 300))
    return (b"From: load@example.org\r\nTo: alice@example.org\r\n"
            b"Subject: crash test %d\r\nMessage-ID: <crash-%d@example.org>\r\n\r\n" % (i, i)
            + body)


def read_until_tagged(f, tag: bytes) -> list[bytes]:
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


def append_all(srv: testserver.TestServer, mailbox: str, msgs: list[bytes]) -> dict[int, bytes]:
    """Pipelined LITERAL+ APPENDs (one round trip instead of one per message);
    returns uid -> message from the APPENDUID codes."""
    with socket.create_connection(("127.0.0.1", srv.imap_port), timeout=30) as sock:
        rf = sock.makefile("rb")
        assert rf.readline().startswith(b"* OK")
        sock.sendall(b"L LOGIN alice alice-pw\r\n")
        assert read_until_tagged(rf, b"L")[-1].startswith(b"L OK")
        sock.sendall(b"".join(b"p%d APPEND %s {%d+}\r\n" % (i, mailbox.encode(), len(m)) + m + b"\r\n"
                              for i, m in enumerate(msgs)))
        by_uid: dict[int, bytes] = {}
        done = 0
        while done < len(msgs):
            line = rf.readline()
            assert line, "connection closed during setup"
            if line.startswith(b"p"):
                m = re.match(rb"p(\d+) OK \[APPENDUID \d+ (\d+)\]", line)
                assert m, line
                by_uid[int(m.group(2))] = msgs[int(m.group(1))]
                done += 1
        return by_uid


@pytest.fixture
def crash_server(tmp_path: Path):
    srv = testserver.TestServer(tmp_path / "data")
    srv.write_config()
    srv.add_user("alice", "alice-pw")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(kill=True)


def imap(srv: testserver.TestServer) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=20)
    c.login("alice", "alice-pw")
    return c


def test_acknowledged_appends_survive_sigkill(crash_server: testserver.TestServer):
    srv = crash_server
    c = imap(srv)
    assert c.create(MAILBOX)[0] == "OK"
    validity_before = int(c.status(MAILBOX, "(UIDVALIDITY)")[1][0].split()[-1].rstrip(b")"))
    c.logout()

    sock = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=30)
    rf = sock.makefile("rb")
    assert rf.readline().startswith(b"* OK")
    sock.sendall(b"L LOGIN alice alice-pw\r\n")
    assert read_until_tagged(rf, b"L")[-1].startswith(b"L OK")

    sent: dict[bytes, bytes] = {}          # tag -> message bytes (written to the socket)
    acked: dict[int, bytes] = {}           # uid -> tag
    ack_order: list[bytes] = []            # tags in the order their OK arrived
    failures: list[bytes] = []
    lock = threading.Lock()
    appenduid = re.compile(rb"^(t\d+) OK \[APPENDUID (\d+) (\d+)\]")

    def reader() -> None:
        try:
            while True:
                line = rf.readline()
                if not line:
                    return
                if line.startswith(b"*"):
                    continue
                m = appenduid.match(line)
                with lock:
                    if m:
                        assert int(m.group(2)) == validity_before
                        acked[int(m.group(3))] = m.group(1)
                        ack_order.append(m.group(1))
                    else:
                        failures.append(line)
        except OSError:
            return

    def writer() -> None:
        try:
            for i in range(MAX_MESSAGES):
                tag = b"t%d" % i
                msg = message(i)
                with lock:
                    sent[tag] = msg
                sock.sendall(b"%s APPEND %s (\\Flagged $Crash) {%d+}\r\n" % (
                    tag, MAILBOX.encode(), len(msg)) + msg + b"\r\n")
        except OSError:
            return

    rt = threading.Thread(target=reader, daemon=True)
    wt = threading.Thread(target=writer, daemon=True)
    rt.start()
    wt.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= ACKS_BEFORE_KILL or failures:
                break
        time.sleep(0.005)
    srv.stop(kill=True)
    rt.join(10)
    wt.join(10)
    sock.close()
    assert not rt.is_alive() and not wt.is_alive()
    assert failures == [], f"APPEND answered without APPENDUID: {failures[:3]}"
    assert len(acked) >= ACKS_BEFORE_KILL, "server acknowledged too few APPENDs before the kill"
    assert len(acked) < len(sent) or len(sent) < MAX_MESSAGES, "kill did not land mid-stream"
    # (RFC 9051 §5.5 lets a server run pipelined APPENDs concurrently, so the
    # order of OKs and of UIDs need not follow the tags; only uniqueness is required.)
    assert len(set(ack_order)) == len(ack_order) == len(acked)

    srv.start()  # same data_dir, same ports
    c = imap(srv)
    typ, data = c.select(MAILBOX)
    assert typ == "OK", data
    exists = int(data[0])
    assert exists >= len(acked)
    assert int(c.untagged_responses["UIDVALIDITY"][-1]) == validity_before
    typ, data = c.uid("SEARCH", None, "ALL")
    present = [int(u) for u in data[0].split()]
    assert len(present) == exists
    missing = sorted(set(acked) - set(present))
    assert missing == [], f"acknowledged UIDs lost after SIGKILL: {missing[:20]}"

    sent_bodies = set(sent.values())
    for uid in present:
        typ, data = c.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
        assert typ == "OK"
        parts = [d for d in data if isinstance(d, tuple)]
        assert len(parts) == 1, data
        body = parts[0][1]
        meta = b" ".join(d if isinstance(d, bytes) else d[0] for d in data)
        if uid in acked:
            assert body == sent[acked[uid]], f"UID {uid} content differs after restart"
            assert b"\\Flagged" in meta and b"$Crash" in meta, meta
        else:
            # Durable but unacknowledged (killed before the OK went out): must be whole.
            assert body in sent_bodies, f"UID {uid} holds a torn or foreign message"

    # Still usable: a new APPEND gets a UID above everything handed out before.
    extra = message(MAX_MESSAGES + 1)
    typ, data = c.append(MAILBOX, None, None, extra)
    assert typ == "OK"
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert m is not None, data
    assert int(m.group(1)) == validity_before
    new_uid = int(m.group(2))
    assert new_uid > max(present) and new_uid > max(acked)
    c.noop()
    typ, data = c.uid("FETCH", str(new_uid), "(BODY.PEEK[])")
    assert data[0][1] == extra
    typ, data = c.select(MAILBOX)
    assert int(data[0]) == exists + 1
    c.logout()


def test_acknowledged_moves_survive_sigkill(crash_server: testserver.TestServer):
    """Pipelined UID MOVEs cut by SIGKILL: every acknowledged move is durable
    (gone from the source, present in the target under its COPYUID, same bytes)
    and no message is lost or duplicated by a half-done move."""
    srv = crash_server
    count = 400
    c = imap(srv)
    assert c.create("Src")[0] == "OK" and c.create("Dst")[0] == "OK"
    c.logout()
    original = append_all(srv, "Src", [message(i) for i in range(count)])
    assert sorted(original) == list(range(1, count + 1))

    sock = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=30)
    rf = sock.makefile("rb")
    assert rf.readline().startswith(b"* OK")
    sock.sendall(b"L LOGIN alice alice-pw\r\nS SELECT Src\r\n")
    assert read_until_tagged(rf, b"L")[-1].startswith(b"L OK")
    assert read_until_tagged(rf, b"S")[-1].startswith(b"S OK")

    copyuid = re.compile(rb"^\* OK \[COPYUID \d+ (\d+) (\d+)\]")
    tagged = re.compile(rb"^m(\d+) (OK|NO|BAD)")
    dst_of: dict[int, int] = {}   # src uid -> dst uid (from COPYUID)
    acked: set[int] = set()       # src uids whose MOVE got a tagged OK
    failures: list[bytes] = []
    lock = threading.Lock()

    def reader() -> None:
        try:
            while True:
                line = rf.readline()
                if not line:
                    return
                with lock:
                    if m := copyuid.match(line):
                        dst_of[int(m.group(1))] = int(m.group(2))
                    elif m := tagged.match(line):
                        if m.group(2) == b"OK":
                            acked.add(int(m.group(1)))
                        else:
                            failures.append(line)
        except OSError:
            return

    def writer() -> None:
        try:
            for uid in range(1, count + 1):
                sock.sendall(b"m%d UID MOVE %d Dst\r\n" % (uid, uid))
        except OSError:
            return

    rt = threading.Thread(target=reader, daemon=True)
    wt = threading.Thread(target=writer, daemon=True)
    rt.start()
    wt.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= ACKS_BEFORE_KILL or failures:
                break
        time.sleep(0.002)
    srv.stop(kill=True)
    rt.join(10)
    wt.join(10)
    sock.close()
    assert failures == [], failures[:3]
    assert len(acked) >= ACKS_BEFORE_KILL
    assert len(acked) < count, "every MOVE finished before the kill; nothing was tested"
    assert acked <= set(dst_of), "a MOVE was acknowledged without COPYUID"

    srv.start()
    c = imap(srv)
    contents: dict[str, dict[int, bytes]] = {}
    for box in ("Src", "Dst"):
        typ, data = c.select(box, readonly=True)
        assert typ == "OK"
        typ, data = c.uid("SEARCH", None, "ALL")
        contents[box] = {}
        for uid in (int(u) for u in data[0].split()):
            typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
            contents[box][uid] = next(d[1] for d in data if isinstance(d, tuple))
    for src_uid in acked:
        assert src_uid not in contents["Src"], f"moved UID {src_uid} still in Src"
        assert contents["Dst"].get(dst_of[src_uid]) == original[src_uid]
    everything = sorted(list(contents["Src"].values()) + list(contents["Dst"].values()))
    assert everything == sorted(original.values()), "message lost or duplicated"
    # Still usable after the crash.
    c.select("Src")
    typ, data = c.uid("MOVE", str(max(contents["Src"])), "Dst")
    assert typ == "OK"
    c.logout()
