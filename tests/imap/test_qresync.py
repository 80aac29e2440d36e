"""CONDSTORE and QRESYNC end to end (RFC 7162 §3.1, §3.2): a raw-socket
client against the real server.

The main test plays the issue's phone: it caches a mailbox, goes offline
while a laptop moves, flags, deletes and receives mail, and comes back with
ENABLE QRESYNC + SELECT (QRESYNC ...). Applying only what the server then
sends must give exactly the server's state, and the server must have sent
only the changed messages. The other tests pin the edge cases: UIDVALIDITY
mismatch, known-uids, seq-match-data, UID FETCH (CHANGEDSINCE n VANISHED),
and VANISHED replacing EXPUNGE once QRESYNC is on.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import pytest
from raw_imap_client import RawClient

from mailbag.imap.selected import seq_match_samples
from mailbag.wire.commands import SeqRange, SequenceSet

_names = itertools.count(1)
FETCH_RE = re.compile(rb"^\* (\d+) FETCH \((.*)\)$")
UID_RE = re.compile(rb"\bUID (\d+)")
FLAGS_RE = re.compile(rb"\bFLAGS \(([^)]*)\)")
MODSEQ_RE = re.compile(rb"\bMODSEQ \((\d+)\)")
CODE_RE = re.compile(rb"\[([A-Z]+) (\d+)\]")


class Client(RawClient):
    """One command at a time, untagged lines kept."""

    inline_literals = False

    def run(self, command: str | bytes, ok: bool = True) -> tuple[list[bytes], bytes]:
        """Send one command; return (untagged lines, tagged line)."""
        tag, raw = self.send(command)
        untagged: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if ok:
                    assert line.startswith(tag + b" OK"), (raw, line, untagged)
                return untagged, line
            untagged.append(line)

    def login(self, user: str = "alice", password: str = "alice-pw") -> None:
        self.run(f"LOGIN {user} {password}")

    def append(self, mailbox: str, body: bytes, flags: str = "") -> int:
        """APPEND with a LITERAL+ literal; the new UID from APPENDUID."""
        cmd = (f"APPEND {mailbox} ({flags}) {{{len(body)}+}}\r\n").encode() + body
        _, tagged = self.run(cmd)
        m = re.search(rb"APPENDUID \d+ (\d+)", tagged)
        assert m, tagged
        return int(m[1])

    def close(self) -> None:
        try:
            self.run("LOGOUT", ok=False)
        finally:
            self.sock.close()


def message(n: int) -> bytes:
    return (f"From: laptop@example.org\r\nSubject: message {n}\r\n"
            f"Message-ID: <{n}@example.org>\r\n\r\nbody {n}\r\n").encode()


def flags_of(text: bytes) -> frozenset[str]:
    return frozenset(f for f in text.decode().split() if f != "\\Recent")


def parse_fetch(line: bytes) -> tuple[int, int, frozenset[str] | None, int | None]:
    """(seq, uid, flags, modseq) of an untagged FETCH line."""
    m = FETCH_RE.match(line)
    assert m, line
    uid = UID_RE.search(m[2])
    assert uid, f"FETCH without UID under QRESYNC: {line!r}"
    flags = FLAGS_RE.search(m[2])
    modseq = MODSEQ_RE.search(m[2])
    return (int(m[1]), int(uid[1]), flags_of(flags[1]) if flags else None,
            int(modseq[1]) if modseq else None)


def uid_set(text: bytes) -> set[int]:
    out: set[int] = set()
    for part in text.decode().split(","):
        lo, _, hi = part.partition(":")
        a, b = int(lo), int(hi or lo)
        out.update(range(min(a, b), max(a, b) + 1))
    return out


def compress(uids: list[int]) -> str:
    """1:3,7 form of ascending UIDs (what a client sends as known-uids)."""
    parts: list[str] = []
    for _, run in itertools.groupby(enumerate(sorted(uids)), lambda p: p[1] - p[0]):
        r = [u for _, u in run]
        parts.append(str(r[0]) if len(r) == 1 else f"{r[0]}:{r[-1]}")
    return ",".join(parts)


def codes(lines: list[bytes]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        for m in CODE_RE.finditer(line):
            out[m[1].decode()] = int(m[2])
    return out


def server_state(port: int, mailbox: str) -> dict[int, frozenset[str]]:
    """uid -> flags, as a fresh client sees them with a full UID FETCH 1:*."""
    c = Client(port)
    try:
        c.login()
        c.run(f"EXAMINE {mailbox}")
        lines, _ = c.run("UID FETCH 1:* (FLAGS)")
        state: dict[int, frozenset[str]] = {}
        for line in lines:
            m = FETCH_RE.match(line)
            if m:
                uid = UID_RE.search(m[2])
                flags = FLAGS_RE.search(m[2])
                assert uid and flags
                state[int(uid[1])] = flags_of(flags[1])
        return state
    finally:
        c.close()


def new_mailbox(port: int, count: int) -> tuple[str, list[int]]:
    """A fresh mailbox holding *count* messages; its name and UIDs."""
    name = f"Q{next(_names)}"
    c = Client(port)
    try:
        c.login()
        c.run(f"CREATE {name}")
        uids = [c.append(name, message(i)) for i in range(count)]
    finally:
        c.close()
    return name, uids


@dataclass
class Phone:
    """The phone's offline cache of one mailbox."""

    uidvalidity: int = 0
    highestmodseq: int = 0
    uidnext: int = 0
    flags: dict[int, frozenset[str]] = field(default_factory=dict)

    def uids(self) -> list[int]:
        return sorted(self.flags)


def phone_first_sync(port: int, mailbox: str) -> Phone:
    c = Client(port)
    try:
        c.login()
        enabled, _ = c.run("ENABLE QRESYNC")
        assert enabled == [b"* ENABLED QRESYNC"]
        lines, _ = c.run(f"SELECT {mailbox}")
        info = codes(lines)
        phone = Phone(info["UIDVALIDITY"], info["HIGHESTMODSEQ"], info["UIDNEXT"])
        fetched, _ = c.run("UID FETCH 1:* (FLAGS)")
        for line in fetched:
            _, uid, flags, modseq = parse_fetch(line)
            assert flags is not None and modseq is not None
            phone.flags[uid] = flags
        return phone
    finally:
        c.close()


@pytest.mark.parametrize("send_known_uids", [True, False])
def test_phone_offline_then_qresync_gets_exactly_the_changes(server, send_known_uids):
    port = server.imap_port
    box, uids = new_mailbox(port, 30)
    phone = phone_first_sync(port, box)
    assert phone.uids() == uids

    # ---- the laptop, while the phone is offline
    laptop = Client(port)
    laptop.login()
    laptop.run(f"SELECT {box}")
    laptop.run(f"UID STORE {uids[2]},{uids[10]} +FLAGS (\\Flagged)")
    laptop.run(f"UID STORE {uids[4]} +FLAGS (\\Seen $Work)")
    laptop.run(f"UID MOVE {uids[6]}:{uids[7]} Archive")              # moved away
    laptop.run(f"UID STORE {uids[12]},{uids[20]} +FLAGS (\\Deleted)")
    laptop.run(f"UID EXPUNGE {uids[12]},{uids[20]}")                  # deleted
    laptop.run(f"UID STORE {uids[25]} +FLAGS (\\Answered)")           # flagged, then
    laptop.run(f"UID STORE {uids[25]} +FLAGS (\\Deleted)")            # deleted
    laptop.run(f"UID EXPUNGE {uids[25]}")
    new = [laptop.append(box, message(100 + i)) for i in range(3)]   # received
    other = laptop.append("Archive", message(200))
    laptop.run("SELECT Archive")
    moved, _ = laptop.run(f"UID MOVE {other} {box}")                  # moved in
    laptop.close()
    copyuid = re.search(rb"COPYUID \d+ \d+ (\d+)", b"".join(moved))
    assert copyuid
    changed = {uids[2], uids[10], uids[4]}
    vanished = {uids[6], uids[7], uids[12], uids[20], uids[25]}
    arrived = set(new) | {int(copyuid[1])}

    # ---- the phone comes back
    c = Client(port)
    c.login()
    c.run("ENABLE QRESYNC")
    known = f" {compress(phone.uids())}" if send_known_uids else ""
    lines, tagged = c.run(f"SELECT {box} (QRESYNC ({phone.uidvalidity} "
                          f"{phone.highestmodseq}{known}))")
    assert b"READ-WRITE" in tagged
    exists = [int(m[1]) for line in lines if (m := re.match(rb"\* (\d+) EXISTS$", line))]
    vanished_lines = [line for line in lines if line.startswith(b"* VANISHED")]
    fetch_lines = [line for line in lines if FETCH_RE.match(line)]
    # The usual SELECT responses come first, then VANISHED (EARLIER), then FETCH.
    order = [i for i, line in enumerate(lines) if line.startswith((b"* VANISHED", b"* OK [HIGH"))]
    assert len(order) == 2 and lines[order[0]].startswith(b"* OK [HIGHESTMODSEQ")
    assert all(lines.index(f) > order[1] for f in fetch_lines)

    assert len(vanished_lines) == 1 and vanished_lines[0].startswith(b"* VANISHED (EARLIER) ")
    gone = uid_set(vanished_lines[0].split()[-1])
    assert gone == vanished
    for uid in gone:
        phone.flags.pop(uid, None)
    fetched = set()
    for line in fetch_lines:
        seq, uid, flags, modseq = parse_fetch(line)
        assert flags is not None and modseq is not None and modseq > phone.highestmodseq
        phone.flags[uid] = flags
        fetched.add(uid)
    # Only the changes were sent: the flag changes, and (without known-uids,
    # which would leave them out) the arrivals; not one unchanged message.
    assert fetched == (changed if send_known_uids else changed | arrived)
    assert len(fetch_lines) == len(fetched)
    # EXISTS tells of the arrivals the phone has not seen: it asks for them.
    assert exists == [len(uids) - len(vanished) + len(arrived)]
    if len(phone.flags) < exists[0]:
        more, _ = c.run(f"UID FETCH {phone.uidnext}:* (FLAGS)")
        for line in more:
            _, uid, flags, _ = parse_fetch(line)
            assert flags is not None
            phone.flags[uid] = flags
        assert {parse_fetch(line)[1] for line in more} == arrived
    assert len(phone.flags) == exists[0]
    c.close()

    assert phone.flags == server_state(port, box)


def qresync_client(port: int) -> Client:
    c = Client(port)
    c.login()
    c.run("ENABLE QRESYNC")
    return c


def test_capability_and_enable(server):
    c = Client(server.imap_port)
    try:
        c.login()
        caps, _ = c.run("CAPABILITY")
        assert b" QRESYNC" in caps[0] and b" CONDSTORE" in caps[0]
        assert c.run("ENABLE QRESYNC")[0] == [b"* ENABLED QRESYNC"]
        assert c.run("ENABLE QRESYNC")[0] == [b"* ENABLED"]    # already on
    finally:
        c.close()


def test_qresync_parameter_needs_enable(server):
    box, _ = new_mailbox(server.imap_port, 1)
    c = Client(server.imap_port)
    try:
        c.login()
        c.run(f"EXAMINE {box}")
        _, tagged = c.run("SELECT INBOX (QRESYNC (1 1))", ok=False)
        assert b" BAD " in tagged
        # The BAD command changed nothing: the mailbox is still selected.
        lines, _ = c.run("FETCH 1:* (FLAGS)")
        assert len(lines) == 1
        _, tagged = c.run("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", ok=False)
        assert b" BAD " in tagged
    finally:
        c.close()


def test_uidvalidity_mismatch_gives_plain_select(server):
    box, uids = new_mailbox(server.imap_port, 3)
    c = qresync_client(server.imap_port)
    try:
        lines, _ = c.run(f"SELECT {box}")
        info = codes(lines)
        c.run(f"UID STORE {uids[0]} +FLAGS (\\Seen)")
        c.run(f"UID STORE {uids[1]} +FLAGS (\\Deleted)")
        c.run("EXPUNGE")
        lines, _ = c.run(f"SELECT {box} (QRESYNC ({info['UIDVALIDITY'] + 1} 1 1:3))")
        assert not [x for x in lines if b"VANISHED" in x or b"FETCH" in x]
        assert b"* 2 EXISTS" in lines
        # The same request with the right UIDVALIDITY does resync.
        lines, _ = c.run(f"SELECT {box} (QRESYNC ({info['UIDVALIDITY']} 1 1:3))")
        assert f"* VANISHED (EARLIER) {uids[1]}".encode() in lines
        assert len([x for x in lines if FETCH_RE.match(x)]) == 2
    finally:
        c.close()


def test_known_uids_limit_vanished_and_fetch(server):
    box, uids = new_mailbox(server.imap_port, 8)
    c = qresync_client(server.imap_port)
    try:
        lines, _ = c.run(f"SELECT {box}")
        info = codes(lines)
        since = info["HIGHESTMODSEQ"]
        c.run(f"UID STORE {uids[1]},{uids[3]},{uids[5]} +FLAGS (\\Deleted)")
        c.run("UID EXPUNGE 1:*")
        c.run(f"UID STORE {uids[0]},{uids[6]} +FLAGS (\\Flagged)")
        known = f"{uids[0]}:{uids[3]}"
        lines, _ = c.run(f"SELECT {box} (QRESYNC ({info['UIDVALIDITY']} {since} {known}))")
        vanished = [x for x in lines if x.startswith(b"* VANISHED")]
        assert vanished == [f"* VANISHED (EARLIER) {uids[1]},{uids[3]}".encode()]
        fetches = [parse_fetch(x) for x in lines if FETCH_RE.match(x)]
        assert [(seq, uid) for seq, uid, _, _ in fetches] == [(1, uids[0])]
        assert fetches[0][2] == frozenset({"\\Flagged"})
    finally:
        c.close()


def test_seq_match_data_narrows_vanished(server):
    box, uids = new_mailbox(server.imap_port, 10)
    c = qresync_client(server.imap_port)
    try:
        lines, _ = c.run(f"SELECT {box}")
        info = codes(lines)
        since = info["HIGHESTMODSEQ"]
        # The client saw uids[1] go while online but kept its old modseq;
        # uids[7] goes while it is away.
        for u in (uids[1], uids[7]):
            c.run(f"UID STORE {u} +FLAGS (\\Deleted)")
            c.run(f"UID EXPUNGE {u}")
        base = f"SELECT {box} (QRESYNC ({info['UIDVALIDITY']} {since}"

        def vanished(extra: str) -> set[int]:
            lines, _ = c.run(base + extra + "))")
            found = [x for x in lines if x.startswith(b"* VANISHED (EARLIER) ")]
            return uid_set(found[0].split()[-1]) if found else set()

        assert vanished("") == {uids[1], uids[7]}
        # Its numbering (seq 1 -> uids[0], 2 -> uids[2], 3 -> uids[3]) still
        # holds: nothing it knew at or below uids[3] went.
        assert vanished(f" ({1}:{3} {uids[0]},{uids[2]}:{uids[3]})") == {uids[7]}
        # A stale pair (seq 2 -> uids[1]) stops the narrowing at uids[0].
        assert vanished(f" (1:2 {uids[0]}:{uids[1]})") == {uids[1], uids[7]}
        # With known-uids too.
        assert vanished(f" {uids[0]}:{uids[9]} (1:3 {uids[0]},{uids[2]}:{uids[3]})") \
            == {uids[7]}
        # Sets of different sizes are a client error.
        _, tagged = c.run(base + " (1:3 1:2)))", ok=False)
        assert b" BAD " in tagged
    finally:
        c.close()


def test_seq_match_samples_cost_follows_ranges_not_messages():
    def s(*ranges: tuple[int, int]) -> SequenceSet:
        return SequenceSet(tuple(SeqRange(a, b) for a, b in ranges))

    assert seq_match_samples(s((1, 100000)), s((1, 100000))) == [(1, 1), (100000, 100000)]
    assert seq_match_samples(s((1, 3)), s((10, 10), (12, 13))) == [(1, 10), (2, 12), (3, 13)]
    with pytest.raises(ValueError):
        seq_match_samples(s((1, 3)), s((1, 2)))
    with pytest.raises(ValueError):
        seq_match_samples(SequenceSet((SeqRange(1, None),)), s((1, 2)))


def test_uid_fetch_changedsince_vanished(server):
    box, uids = new_mailbox(server.imap_port, 6)
    c = qresync_client(server.imap_port)
    try:
        lines, _ = c.run(f"SELECT {box}")
        since = codes(lines)["HIGHESTMODSEQ"]
        c.run(f"UID STORE {uids[0]},{uids[4]} +FLAGS (\\Deleted)")
        c.run("EXPUNGE")
        c.run(f"UID STORE {uids[1]},{uids[5]} +FLAGS ($Later)")
        lines, _ = c.run(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)")
        assert lines[0] == f"* VANISHED (EARLIER) {uids[0]},{uids[4]}".encode()
        fetches = [parse_fetch(x) for x in lines[1:]]
        assert [(uid, flags) for _, uid, flags, _ in fetches] == [
            (uids[1], frozenset({"$Later"})), (uids[5], frozenset({"$Later"}))]
        assert all(m is not None and m > since for *_, m in fetches)
        # Only the UIDs of the set are reported.
        lines, _ = c.run(f"UID FETCH {uids[2]}:{uids[5]} (FLAGS) "
                         f"(CHANGEDSINCE {since} VANISHED)")
        assert lines[0] == f"* VANISHED (EARLIER) {uids[4]}".encode()
        assert [parse_fetch(x)[1] for x in lines[1:]] == [uids[5]]
        # CHANGEDSINCE alone (by sequence number): no VANISHED.
        lines, _ = c.run(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {since})")
        assert [parse_fetch(x)[:2] for x in lines] == [(1, uids[1]), (4, uids[5])]
        assert c.run("FETCH 2:3 (FLAGS) (CHANGEDSINCE 1)")[0] != []
        assert c.run("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 999999999)")[0] == []
    finally:
        c.close()


def test_vanished_replaces_expunge_once_enabled(server):
    box, uids = new_mailbox(server.imap_port, 8)
    c = qresync_client(server.imap_port)
    other = Client(server.imap_port)
    try:
        other.login()
        c.run(f"SELECT {box}")
        other.run(f"SELECT {box}")
        # EXPUNGE
        c.run(f"UID STORE {uids[0]} +FLAGS.SILENT (\\Deleted)")
        lines, _ = c.run("EXPUNGE")
        assert lines == [f"* VANISHED {uids[0]}".encode()]
        # UID EXPUNGE
        c.run(f"UID STORE {uids[1]}:{uids[2]} +FLAGS.SILENT (\\Deleted)")
        lines, _ = c.run(f"UID EXPUNGE {uids[1]}:{uids[2]}")
        assert lines == [f"* VANISHED {uids[1]}:{uids[2]}".encode()]
        # MOVE
        lines, _ = c.run(f"UID MOVE {uids[3]} Archive")
        assert [x for x in lines if not x.startswith(b"* OK")] == [
            f"* VANISHED {uids[3]}".encode()]
        # Another session's expunge, seen on NOOP
        told, _ = other.run(f"UID STORE {uids[4]} +FLAGS.SILENT (\\Deleted)")
        told += other.run(f"UID EXPUNGE {uids[4]}")[0]
        lines, _ = c.run("NOOP")
        assert lines == [f"* VANISHED {uids[4]}".encode()]
        # The session without QRESYNC gets EXPUNGE, for all five.
        expunges = [x for x in told if b"FETCH" not in x]
        assert len(expunges) == 5
        assert all(re.fullmatch(rb"\* \d EXPUNGE", x) for x in expunges)
        # FETCH and STORE answers carry the UID under QRESYNC.
        lines, _ = c.run("FETCH 1 (FLAGS)")
        assert parse_fetch(lines[0])[1] == uids[5]
        lines, _ = c.run("STORE 1 +FLAGS (\\Seen)")
        assert parse_fetch(lines[0])[1:3] == (uids[5], frozenset({"\\Seen"}))
        # CLOSE expunges silently; SELECT over a selected mailbox says [CLOSED].
        c.run(f"UID STORE {uids[5]} +FLAGS.SILENT (\\Deleted)")
        lines, _ = c.run("CLOSE")
        assert lines == []
        c.run(f"SELECT {box}")
        lines, _ = c.run(f"EXAMINE {box}")
        assert lines[0] == b"* OK [CLOSED] Previous mailbox closed"
        assert b"* 2 EXISTS" in lines
    finally:
        c.close()
        other.close()


def test_highestmodseq_in_select_and_status_agree(server):
    box, uids = new_mailbox(server.imap_port, 2)
    c = qresync_client(server.imap_port)
    try:
        status, _ = c.run(f"STATUS {box} (HIGHESTMODSEQ)")
        lines, _ = c.run(f"SELECT {box}")
        assert status == [f"* STATUS {box} (HIGHESTMODSEQ {codes(lines)['HIGHESTMODSEQ']})"
                          .encode()]
        lines, _ = c.run(f"UID STORE {uids[0]} +FLAGS (\\Seen)")
        _, _, _, modseq = parse_fetch(lines[0])
        c.run("UNSELECT")
        status, _ = c.run(f"STATUS {box} (HIGHESTMODSEQ)")
        assert status == [f"* STATUS {box} (HIGHESTMODSEQ {modseq})".encode()]
    finally:
        c.close()


def test_device_offline_longer_than_the_expunge_history(tmp_path):
    """limits.expunge_history_days: the server forgets old expunges (at
    start and every few hours). A device whose modseq predates what was
    forgotten still ends up exact: VANISHED (EARLIER) names every UID
    below UIDNEXT that is gone (within its known-uids), none that exists."""
    import time

    import testserver

    srv = testserver.TestServer(tmp_path / "srv",
                                extra_config="[limits]\nexpunge_history_days = 0.00001\n")
    with testserver.serving(srv, {"alice": "alice-pw"}, no_traceback=True):
        box, uids = new_mailbox(srv.imap_port, 6)
        c = qresync_client(srv.imap_port)
        lines, _ = c.run(f"SELECT {box}")
        info = codes(lines)
        c.run(f"UID STORE {uids[1]},{uids[4]} +FLAGS (\\Deleted)")
        c.run("EXPUNGE")
        c.close()
        time.sleep(2.1)            # older than 0.00001 days (0.86 s), in whole seconds
        srv.stop()
        srv.start()                # prunes at start, in the background
        deadline = time.monotonic() + 20
        while "expunge-history-pruned rows=2" not in srv.log_text():
            assert time.monotonic() < deadline, srv.log_text()
            time.sleep(0.05)
        c = qresync_client(srv.imap_port)
        uv, since = info["UIDVALIDITY"], info["HIGHESTMODSEQ"]
        lines, _ = c.run(f"SELECT {box} (QRESYNC ({uv} {since}))")
        vanished = [x for x in lines if x.startswith(b"* VANISHED")]
        assert len(vanished) == 1 and uid_set(vanished[0].split(b") ")[1]) \
            >= {uids[1], uids[4]}
        assert not uid_set(vanished[0].split(b") ")[1]) & {uids[i] for i in (0, 2, 3, 5)}
        assert b"* 4 EXISTS" in lines
        lines, _ = c.run(f"SELECT {box} (QRESYNC ({uv} {since} {uids[2]}:{uids[5]}))")
        assert [x for x in lines if x.startswith(b"* VANISHED")] == \
            [f"* VANISHED (EARLIER) {uids[4]}".encode()]
        c.close()
