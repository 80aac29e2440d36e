"""IDLE at scale, functionally (not timed): hundreds of idlers in one mailbox,
some over TLS and some over COMPRESS, are all told of a new message and of a
flag change and an expunge; idlers in another mailbox are not disturbed; a
real TLS client (curl imaps) still works on the server's own TLS layer."""

from __future__ import annotations

import resource
import shutil
import socket
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testserver

from mailbag.imap.commands import idle
from mailbag.imap.selected import SelectedMailbox
from mailbag.store.api import Changes, MailboxInfo, MessageMeta
from mailbag.store.index import MailboxIndex

IDLERS = 500
PASSWORD = "idle-pw"
MSG = b"From: a@example.org\r\nSubject: push\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testserver.TestServer]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * IDLERS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * IDLERS), hard))
    srv = testserver.TestServer(tmp_path_factory.mktemp("idle-scale"),
                     extra_config="[limits]\nmax_connections = 2000\n"
                                  "max_connections_per_ip = 2000\n")
    srv.write_config()
    srv.add_user("ida", PASSWORD)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


class Idler:
    def __init__(self, port: int, tls: bool = False, compress: bool = False,
                 mailbox: bytes = b"INBOX", enable: bytes = b"",
                 select: bytes = b"SELECT") -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls:
            sock = testserver.client_tls().wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.inflate: Any = None
        self.deflate: Any = None
        self.send(b'L LOGIN ida "%s"\r\n' % PASSWORD.encode())
        self.until(b"L OK")
        if compress:
            self.send(b"Z COMPRESS DEFLATE\r\n")
            self.until(b"Z OK")
            self.until(b"\r\n")          # the OK line is the last clear text
            self.inflate = zlib.decompressobj(-15)
            self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.buf = self.inflate.decompress(self.buf)
        if enable:
            self.send(b"E ENABLE " + enable + b"\r\n")
            self.until(b"E OK")
        self.send(b"S " + select + b" " + mailbox + b"\r\nI IDLE\r\n")
        self.until(b"\r\n+ ")
        self.buf = b""

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            raw = self.sock.recv(65536)
            if not raw:
                raise ConnectionError(f"closed waiting for {marker!r}: {self.buf[-200:]!r}")
            self.buf += self.inflate.decompress(raw) if self.inflate is not None else raw
        head, _, self.buf = self.buf.partition(marker)
        return head

    def close(self) -> None:
        self.sock.close()


def command(port: int, *lines: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b'L LOGIN ida "%s"\r\n' % PASSWORD.encode() + b"".join(lines)
                  + b"Q LOGOUT\r\n")
        out = b""
        while b"Q OK" not in out:
            data = s.recv(65536)
            if not data:
                break
            out += data
        return out


def test_every_idler_hears_every_change(big: testserver.TestServer) -> None:
    out = command(big.imap_port, b"C CREATE Other\r\n")
    assert b"C OK" in out
    idlers: list[Idler] = []
    try:
        for i in range(IDLERS):
            idlers.append(Idler(big.imaps_port if i % 10 == 0 else big.imap_port,
                                tls=i % 10 == 0, compress=i % 7 == 0))
        others = [Idler(big.imap_port, mailbox=b"Other") for _ in range(5)]

        out = command(big.imap_port, b"A APPEND INBOX {%d+}\r\n%s\r\n" % (len(MSG), MSG))
        assert b"A OK" in out
        for idler in idlers:
            idler.until(b"* 1 EXISTS\r\n")

        out = command(big.imap_port, b"S SELECT INBOX\r\nF STORE 1 +FLAGS (\\Flagged)\r\n")
        assert b"F OK" in out
        for idler in idlers:
            line = idler.until(b"\r\n")
            assert line.startswith(b"* 1 FETCH (FLAGS (") and b"\\Flagged" in line, line

        out = command(big.imap_port, b"S SELECT INBOX\r\nD STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"
                                     b"E EXPUNGE\r\n")
        assert b"E OK" in out
        for idler in idlers:
            idler.until(b"* 1 EXPUNGE\r\n")

        # The idlers of the other mailbox heard nothing and still IDLE.
        for other in others:
            other.send(b"DONE\r\n")
            assert b"EXISTS" not in other.until(b"I OK")
        for idler in idlers[:20]:
            idler.send(b"DONE\r\n")
            idler.until(b"I OK")
    finally:
        for idler in idlers:
            idler.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_imaps_lists_and_fetches(big: testserver.TestServer, tmp_path: Path) -> None:
    assert b"A OK" in command(big.imap_port, b"A APPEND INBOX {%d+}\r\n%s\r\n" % (len(MSG), MSG))
    r = subprocess.run(
        ["curl", "-sS", "-k", "--max-time", "20", "-u", f"ida:{PASSWORD}",
         f"imaps://127.0.0.1:{big.imaps_port}/INBOX;MAILINDEX=1"],
        capture_output=True, check=False,
    )
    assert r.returncode == 0, r.stderr
    assert b"Subject: push" in r.stdout
    r = subprocess.run(
        ["curl", "-sS", "-k", "--max-time", "20", "-u", f"ida:{PASSWORD}",
         f"imap://127.0.0.1:{big.imap_port}/", "--ssl-reqd"],
        capture_output=True, check=False,
    )
    assert r.returncode == 0, r.stderr          # STARTTLS, then LIST
    assert b"INBOX" in r.stdout


def test_tls_large_transfer_both_ways(big: testserver.TestServer) -> None:
    """Partial reads and writes in the TLS layer: a literal far bigger than
    a TLS record goes in, and comes back out intact."""
    body = b"Subject: big\r\n\r\n" + b"".join(b"%07d abcdefghijklmnopqrstuvwxyz\r\n" % i
                                               for i in range(40000))
    with testserver.client_tls().wrap_socket(socket.create_connection(("127.0.0.1", big.imaps_port),
                                                  timeout=30)) as s:
        s.sendall(b'L LOGIN ida "%s"\r\nC CREATE Big\r\n' % PASSWORD.encode()
                  + b"A APPEND Big {%d+}\r\n" % len(body) + body
                  + b"\r\nS SELECT Big\r\nF FETCH 1 BODY.PEEK[]\r\nQ LOGOUT\r\n")
        out = b""
        while b"Q OK" not in out:
            data = s.recv(65536)
            if not data:
                break
            out += data
    assert b"A OK" in out and b"F OK" in out
    assert b"{%d}\r\n" % len(body) + body in out


# ---------------------------------------------------------------------------
# the pure-append shortcut of the IDLE fan-out (imap/commands/idle.py)

def _view(index: MailboxIndex, readonly: bool = False) -> SelectedMailbox:
    info = MailboxInfo(id=1, account_id=1, name="INBOX", special_use=None, uidvalidity=1,
                       uidnext=index.uids[-1] + 1, highestmodseq=index.modseq,
                       messages=len(index.uids), unseen=0, deleted=0, size=0)
    return SelectedMailbox.open(info, readonly, index)


def _index() -> MailboxIndex:
    return MailboxIndex(1, 1, uids=[1, 2, 3], flags=[frozenset()] * 3, modseqs=[1, 2, 3],
                        modseq=3, target=3, first_recent=1)


def _state(sel: SelectedMailbox) -> tuple[object, ...]:
    return (list(sel.uids), set(sel.recent), set(sel.keywords), sel.modseq, sel.dirty,
            sel.recent_from)


APPEND = Changes(highestmodseq=5, uidnext=6, expunged=(), changed=(
    MessageMeta(4, frozenset({"\\Seen", "$Hot"}), 4), MessageMeta(5, frozenset(), 5)))


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("claimed", [False, True])
def test_append_shortcut_equals_apply(readonly: bool, claimed: bool) -> None:
    """For a pure append, the shortcut leaves the view exactly as apply()
    would, sends the same bytes, and claims \\Recent the same way."""
    slow_index, fast_index = _index(), _index()
    slow, fast = _view(slow_index, readonly), _view(fast_index, readonly)
    for index in (slow_index, fast_index):    # what the fan-out refreshed
        index.apply(APPEND)
        if claimed:
            index.claim_recent()               # another session saw them first
    for sel in (slow, fast):
        sel.dirty = True
    if not readonly:
        slow.recent_from = slow_index.claim_recent()   # as Session.apply_changes
    lines = slow.apply(APPEND, allow_expunge=True, condstore=True, qresync=True)
    plan = idle._append_plan(APPEND, len(fast.uids), fast.uids[-1])
    assert plan is not None
    idle._apply_append(fast, plan)
    assert lines == [plan.line] == [b"* 5 EXISTS\r\n"]
    assert _state(fast) == _state(slow)
    assert fast_index.first_recent == slow_index.first_recent
    assert fast.recent - {1, 2, 3} == (set() if readonly or claimed else {4, 5})


def test_append_shortcut_refuses_what_apply_must_do() -> None:
    """Anything touching a message the view knows of is not a pure append."""
    flag = Changes(highestmodseq=5, uidnext=5, expunged=(), changed=(
        MessageMeta(2, frozenset({"\\Flagged"}), 4), MessageMeta(4, frozenset(), 5)))
    gone = Changes(highestmodseq=5, uidnext=5, expunged=(3,), changed=(
        MessageMeta(4, frozenset(), 5),))
    late = Changes(highestmodseq=5, uidnext=6, expunged=(5,), changed=(
        MessageMeta(4, frozenset(), 4),))
    assert idle._append_plan(flag, 3, 3) is None
    assert idle._append_plan(gone, 3, 3) is None
    assert idle._append_plan(Changes(5, 4, (), ()), 3, 3) is None
    # An expunge of a message the view never had does not matter.
    plan = idle._append_plan(late, 3, 3)
    assert plan is not None and plan.line == b"* 4 EXISTS\r\n"
    # A view that is behind (2 messages, last UID 2) gets its own count.
    plan = idle._append_plan(APPEND, 2, 2)
    assert plan is not None and plan.line == b"* 4 EXISTS\r\n"


def _recent_of(idler: Idler, seqs: bytes) -> dict[int, bool]:
    """DONE, then which messages of *seqs* the session sees as \\Recent."""
    idler.send(b"DONE\r\nR FETCH " + seqs + b" (FLAGS)\r\n")
    idler.until(b"I OK")
    out = idler.until(b"R OK")
    got: dict[int, bool] = {}
    for line in out.split(b"\r\n"):
        if b" FETCH (" in line:
            got[int(line.split()[1])] = b"\\Recent" in line
    return got


def test_idlers_in_every_state_hear_appends_and_flags(big: testserver.TestServer) -> None:
    """Plain, CONDSTORE, QRESYNC, read-only, TLS and COMPRESS idlers hear a
    pure append as one EXISTS and nothing else; a flag change together with
    an append as FETCH (with MODSEQ / UID where enabled) and EXISTS; exactly
    one session sees each new message as \\Recent."""
    assert b"C OK" in command(big.imap_port, b"C CREATE Shortcut\r\n"
                              b"A APPEND Shortcut {%d+}\r\n%s\r\n" % (len(MSG), MSG))
    box = b"Shortcut"
    kinds: list[tuple[str, Idler]] = []
    try:
        for _ in range(6):
            kinds.append(("plain", Idler(big.imap_port, mailbox=box)))
            kinds.append(("condstore", Idler(big.imap_port, mailbox=box, enable=b"CONDSTORE")))
            kinds.append(("qresync", Idler(big.imap_port, mailbox=box, enable=b"QRESYNC")))
            kinds.append(("readonly", Idler(big.imap_port, mailbox=box, select=b"EXAMINE")))
        kinds.append(("plain", Idler(big.imaps_port, tls=True, mailbox=box)))
        kinds.append(("plain", Idler(big.imap_port, compress=True, mailbox=box)))

        # A pure append: "* 2 EXISTS" and nothing else, for everyone.
        assert b"A OK" in command(big.imap_port,
                                  b"A APPEND Shortcut {%d+}\r\n%s\r\n" % (len(MSG), MSG))
        for kind, idler in kinds:
            assert idler.until(b"* 2 EXISTS\r\n") == b"", (kind, idler.buf)

        # A flag change on a known message and an append, pipelined: in one
        # batch or two, every idler hears both, each as its options say.
        out = command(big.imap_port, b"S SELECT Shortcut\r\nF STORE 1 +FLAGS.SILENT (\\Flagged)"
                      b"\r\nA APPEND Shortcut {%d+}\r\n%s\r\nR FETCH 3 (FLAGS)\r\n"
                      % (len(MSG), MSG))
        assert b"F OK" in out and b"A OK" in out and b"R OK" in out
        mine = [x for x in out.split(b"\r\n") if x.startswith(b"* 3 FETCH (")]
        assert len(mine) == 1, out
        appender_recent = b"\\Recent" in mine[0]
        for kind, idler in kinds:
            head = idler.until(b"* 3 EXISTS\r\n")
            # One batch: EXISTS, then FETCH; two: FETCH, then EXISTS.
            line = head if head else idler.until(b"\r\n")
            assert line.startswith(b"* 1 FETCH ("), (kind, line)
            assert b"\\Flagged" in line, (kind, line)
            assert (b"MODSEQ (" in line) == (kind in ("condstore", "qresync")), (kind, line)
            assert (b"UID 1 " in line) == (kind == "qresync"), (kind, line)
            assert head.count(b"\r\n") <= 1, (kind, head)    # no "* 2 EXISTS" again

        # \Recent: message 2 is recent for exactly one idler; message 3
        # for exactly one session (an idler or the appender, which had
        # the mailbox selected); never for a read-only one.
        recent2 = recent3 = 0
        for kind, idler in kinds:
            seen = _recent_of(idler, b"2:3")
            assert set(seen) == {2, 3}, (kind, seen)
            if kind == "readonly":
                assert not seen[2] and not seen[3]
            recent2 += seen[2]
            recent3 += seen[3]
        assert recent2 == 1
        assert recent3 + appender_recent == 1
    finally:
        for _, idler in kinds:
            idler.close()


def _exists_seen(text: bytes) -> int:
    """The last EXISTS count in *text* (0 if none)."""
    counts = [int(line.split()[1]) for line in text.split(b"\r\n")
              if line.startswith(b"* ") and line.endswith(b" EXISTS")]
    return counts[-1] if counts else 0


def test_idle_group_under_bursts_and_churn(big: testserver.TestServer) -> None:
    """The idle group of a mailbox: appends committed while a push is
    still writing (pipelined APPENDs), and idlers that leave and re-enter
    IDLE in the middle, must all end at the mailbox's true size, each count
    announced in order and none announced twice."""
    out = command(big.imap_port, b"C CREATE Burst\r\n")
    assert b"C OK" in out
    idlers = [Idler(big.imap_port, mailbox=b"Burst") for _ in range(200)]
    try:
        burst = b"".join(b"A%d APPEND Burst {%d+}\r\n%s\r\n" % (i, len(MSG), MSG)
                         for i in range(10))
        with socket.create_connection(("127.0.0.1", big.imap_port), timeout=20) as ap:
            ap.sendall(b'L LOGIN ida "%s"\r\n' % PASSWORD.encode() + burst)
            # Half of the idlers leave IDLE and come back while the burst lands.
            for idler in idlers[::2]:
                idler.send(b"DONE\r\nN NOOP\r\nI IDLE\r\n")
            got = b""
            while b"A9 OK" not in got:
                got += ap.recv(65536)
            ap.sendall(b"B APPEND Burst {%d+}\r\n%s\r\nQ LOGOUT\r\n" % (len(MSG), MSG))
            while b"Q OK" not in got:
                got += ap.recv(65536)
        for idler in idlers:
            text = idler.until(b"* 11 EXISTS\r\n") + b"* 11 EXISTS\r\n"
            counts = [int(line.split()[1]) for line in text.split(b"\r\n")
                      if line.startswith(b"* ") and line.endswith(b" EXISTS")]
            assert counts == sorted(set(counts)), counts      # in order, no repeats
            idler.send(b"DONE\r\nF FETCH 1:* (UID)\r\n")
            after = idler.until(b"F OK")
            assert after.count(b" FETCH (UID ") == 11
            assert _exists_seen(after) == 0                    # nothing left untold
    finally:
        for idler in idlers:
            idler.close()


def test_leaving_the_idle_group_keeps_an_unwritten_change() -> None:
    """A session that leaves IDLE (DONE) after its group heard of a change
    but before the group's push wrote it must update itself: it is marked
    dirty and watches the index on its own again."""
    from types import SimpleNamespace

    class StandIn:                 # what _join/_leave use of a Session
        def __init__(self, sel: SelectedMailbox) -> None:
            self.selected, self.heard, self.notify = sel, 0, None
            self.snapshot = False  # NOTIFY without selected events (never joins)
            self.ctx = SimpleNamespace(indexes=None, fanout=None)

        def on_store_change(self, mailbox_id: int, modseq: int) -> None:
            pass

    index = _index()
    sel = _view(index)
    s = StandIn(sel)
    s.selected.index.watchers.add(s.on_store_change)
    group = idle._join(s)          # type: ignore[arg-type]
    assert group is not None and s.on_store_change not in index.watchers
    assert group.on_change in index.watchers
    index.target = 5               # announced, not pushed yet
    idle._leave(s, group)          # type: ignore[arg-type]
    assert sel.dirty and s.heard == 5
    assert s.on_store_change in index.watchers and group.on_change not in index.watchers
    assert index not in idle._groups
