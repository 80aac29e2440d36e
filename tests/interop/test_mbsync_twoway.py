"""Interop with mbsync (isync): a mailbox tree that changes on BOTH sides
between syncs converges to one identical state.

Each round compares the full state of both sides (every selectable folder;
per folder every message by Message-ID with its flags and its bytes) with each
other and with a model of what the state must be:

* round 0: folders and flagged messages made on the server are pulled down;
* round 1: at the same time, on the server (IMAP: APPEND, STORE, STORE \\Deleted
  without EXPUNGE, EXPUNGE, MOVE, CREATE) and in the Maildir (rename to mark
  seen / flagged / trashed, delete a file, new files in cur/ and new/, a new
  folder), then one sync; both sides end up equal to the model. Conflicts:
  the same message flagged on one side and seen on the other ends up with
  both flags on both sides;
* round 2: a sync with nothing to do changes nothing: the same files under
  the same names locally, the same UIDs, flags, UIDNEXT and HIGHESTMODSEQ on
  the server.

Flag mapping (mbsync, Maildir info ``:2,``): D \\Draft, F \\Flagged,
R \\Answered, S \\Seen, T \\Deleted. With ``Expunge Both`` a \\Deleted message
(or a T file) is expunged on both sides. Bodies are compared byte for byte
after the two transformations a Maildir sync makes by design: CRLF on the
server is LF in the Maildir, and mbsync adds an ``X-TUID`` header to messages
it uploads (to find them again); nothing else may differ.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(MBSYNC is None,
                                reason="mbsync binary not installed (apt-get install isync)")

USER, PASSWORD = "alice", "alice-pw"
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                 "T": "\\Deleted"}
SYNCED_FLAGS = frozenset(MAILDIR_FLAGS.values())
# Folders every new account has (mailbag creates them with special-use).
DEFAULT_FOLDERS = {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}

Model = dict[str, dict[str, frozenset[str]]]      # folder -> Message-ID -> flags


def msg(mid: str, subject: str, body: str = "") -> bytes:
    """A message (CRLF) whose text says where it came from."""
    text = body or f"This is {mid}.\r\nA line with trailing space \r\n-- \r\nsig\r\n"
    return (f"From: Sender <s@example.org>\r\nTo: alice@example.org\r\n"
            f"Subject: {subject}\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{mid}@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}").encode()


def message_id(raw: bytes) -> str:
    m = re.search(rb"^Message-ID:\s*<([^@>]+)@", raw, re.M | re.I)
    assert m, raw[:300]
    return m.group(1).decode()


def canonical(raw: bytes, *, maildir: bool) -> bytes:
    """The message as the server must hold it: CRLF line ends, no X-TUID."""
    if maildir:
        assert b"\r\n" not in raw, "a Maildir file with CRLF line ends"
        raw = raw.replace(b"\n", b"\r\n")
    else:
        assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF in a server message"
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept = [h for h in lines if not h.lower().startswith(b"x-tuid:")]
    assert len(lines) - len(kept) <= 1, head
    return b"\r\n".join(kept) + sep + body


@dataclass(frozen=True)
class Message:
    flags: frozenset[str]
    raw: bytes            # canonical form


State = dict[str, dict[str, Message]]               # folder -> Message-ID -> message


# ------------------------------------------------------------------ server side

def connect(server) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=20)
    c.login(USER, PASSWORD)
    return c


def ok(result: tuple[str, list]) -> list:
    typ, data = result
    assert typ == "OK", data
    return data


def server_folders(c: imaplib.IMAP4) -> list[str]:
    out = []
    for line in ok(c.list('""', "*")):
        m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
        assert m, line
        attrs = m.group(1).lower()
        if b"\\noselect" in attrs or b"\\nonexistent" in attrs:
            continue
        name = m.group(2)
        out.append(name[1:-1].decode() if name.startswith(b'"') else name.decode())
    return sorted(out)


def quote(name: str) -> str:
    return '"' + name + '"'


def fetch_all(c: imaplib.IMAP4, folder: str) -> dict[int, tuple[frozenset[str], bytes]]:
    """UID -> (flags, raw) for every message of folder, read-only."""
    count = int(ok(c.select(quote(folder), readonly=True))[0])
    if count == 0:
        return {}
    flags: dict[int, frozenset[str]] = {}
    for line in ok(c.uid("FETCH", "1:*", "(FLAGS)")):
        m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
        assert m, line
        uid = int(m.group(1) or m.group(4))
        names = (m.group(2) if m.group(1) else m.group(3)).decode().split()
        flags[uid] = frozenset(names)
    bodies: dict[int, bytes] = {}
    for item in ok(c.uid("FETCH", "1:*", "(BODY.PEEK[])")):
        if isinstance(item, tuple):
            m = re.search(rb"UID (\d+)", item[0])
            assert m, item[0]
            bodies[int(m.group(1))] = item[1]
    assert len(flags) == count and flags.keys() == bodies.keys(), (folder, flags, bodies.keys())
    return {uid: (flags[uid], bodies[uid]) for uid in flags}


def server_state(server) -> tuple[State, dict[str, tuple]]:
    """The messages of every folder, and per folder the details a no-op sync
    must not change (UID -> all flags, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ)."""
    c = connect(server)
    try:
        state: State = {}
        details: dict[str, tuple] = {}
        for folder in server_folders(c):
            msgs = fetch_all(c, folder)
            seen: dict[str, Message] = {}
            for _uid, (flags, raw) in sorted(msgs.items()):
                mid = message_id(raw)
                assert mid not in seen, f"{mid} twice in server folder {folder}"
                seen[mid] = Message(frozenset(flags & SYNCED_FLAGS), canonical(raw, maildir=False))
            state[folder] = seen
            status = ok(c.status(quote(folder), "(UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"))[0]
            details[folder] = (tuple(sorted((u, tuple(sorted(f))) for u, (f, _) in msgs.items())),
                               status.split(b"(", 1)[1])
        return state, details
    finally:
        c.logout()


# ------------------------------------------------------------------- local side

def maildir_flags(path: Path) -> str:
    return path.name.split(":2,", 1)[1] if ":2," in path.name else ""


def local_folders(root: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob("cur") if p.is_dir())


def local_files(root: Path, folder: str) -> list[Path]:
    return sorted(p for sub in ("cur", "new") if (root / folder / sub).is_dir()
                  for p in (root / folder / sub).iterdir() if p.is_file())


def local_state(root: Path) -> State:
    state: State = {}
    for folder in local_folders(root):
        seen: dict[str, Message] = {}
        for path in local_files(root, folder):
            raw = path.read_bytes()
            mid = message_id(raw)
            assert mid not in seen, f"{mid} twice in local folder {folder}"
            letters = maildir_flags(path)
            assert set(letters) <= set(MAILDIR_FLAGS), path.name
            seen[mid] = Message(frozenset(MAILDIR_FLAGS[x] for x in letters),
                                canonical(raw, maildir=True))
        state[folder] = seen
    return state


def find(root: Path, folder: str, mid: str) -> Path:
    hits = [p for p in local_files(root, folder) if message_id(p.read_bytes()) == mid]
    assert len(hits) == 1, (folder, mid, hits)
    return hits[0]


def set_local_flags(path: Path, letters: str) -> Path:
    """Maildir flag change: rename into cur/ with a new info suffix."""
    base = path.name.split(":2,", 1)[0]
    target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(letters))}"
    path.rename(target)
    return target


def deliver(root: Path, folder: str, name: str, raw: bytes, sub: str, letters: str = "") -> None:
    """Write a message the Maildir way (tmp/, then rename) into cur/ or new/."""
    for d in ("cur", "new", "tmp"):
        (root / folder / d).mkdir(parents=True, exist_ok=True)
    tmp = root / folder / "tmp" / name
    tmp.write_bytes(raw.replace(b"\r\n", b"\n"))
    final = name + (f":2,{letters}" if sub == "cur" else "")
    tmp.rename(root / folder / sub / final)


# ----------------------------------------------------------------------- mbsync

def write_rc(tmp_path: Path, root: Path, port: int) -> Path:
    out = subprocess.run([MBSYNC, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    assert m, out
    keyword = "TLSType" if (int(m.group(1)), int(m.group(2))) >= (1, 5) else "SSLType"
    root.mkdir(parents=True, exist_ok=True)
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount mailbag\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n"
        f"{keyword} None\nAuthMechs PLAIN LOGIN\n\n"
        f"IMAPStore far\nAccount mailbag\n\n"
        f"MaildirStore near\nPath {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n\n"
        f"Channel both\nFar :far:\nNear :near:\nPatterns *\nSync All\nCreate Both\n"
        f"Expunge Both\nSyncState *\n"
    )
    return rc


def sync(rc: Path) -> str:
    r = subprocess.run([MBSYNC, "-c", str(rc), "-a"], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, HOME=str(rc.parent)))
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"mbsync failed ({r.returncode}):\n{out}"
    # "Warning: lost track of ...", "UIDVALIDITY of ... changed", "Error: ...":
    # mbsync recovers from some of these, but a good server causes none.
    assert not re.search(r"warning|error", out, re.I), out
    return out


# ------------------------------------------------------------------- assertions

def assert_converged(server, root: Path, model: Model, raws: dict[str, bytes]) -> State:
    """Both sides hold exactly the model: the same folders, the same
    Message-IDs per folder, the same flags, the same bytes."""
    far, _ = server_state(server)
    near = local_state(root)
    assert sorted(far) == sorted(near), ("folders differ", sorted(far), sorted(near))
    for folder in far:
        assert sorted(far[folder]) == sorted(near[folder]), (folder, far[folder].keys(),
                                                             near[folder].keys())
        for mid, m in far[folder].items():
            n = near[folder][mid]
            assert m.flags == n.flags, (folder, mid, "server", m.flags, "local", n.flags)
            assert m.raw == n.raw, (folder, mid, m.raw, n.raw)
    want_folders = sorted(set(model) | DEFAULT_FOLDERS)
    assert sorted(far) == want_folders, (sorted(far), want_folders)
    for folder in want_folders:
        got = {mid: m.flags for mid, m in far[folder].items()}
        assert got == model.get(folder, {}), (folder, got, model.get(folder, {}))
        for mid, m in far[folder].items():
            assert m.raw == raws[mid], (folder, mid, m.raw, raws[mid])
    return far


F = frozenset


def test_both_sides_change_between_syncs(server, tmp_path):
    root = tmp_path / "mail"
    rc = write_rc(tmp_path, root, server.imap_port)
    raws: dict[str, bytes] = {}

    def make(mid: str, subject: str) -> bytes:
        raws[mid] = msg(mid, subject)
        return raws[mid]

    # ---- round 0: a tree of folders and flagged mail on the server only
    c = connect(server)
    for folder in ("Work", "Lists/Python", "Lists/Rust"):
        ok(c.create(quote(folder)))
    initial = {
        "INBOX": [("m1", ""), ("m2", "\\Seen"), ("m3", "\\Flagged"),
                  ("m4", "\\Answered \\Seen"), ("m5", ""), ("m6", ""), ("m8", "\\Seen")],
        "Work": [("w1", "\\Seen"), ("w2", ""), ("w3", "\\Answered")],
        "Lists/Python": [("p1", ""), ("p2", "\\Seen"), ("p3", "")],
        "Lists/Rust": [("r1", "\\Seen \\Flagged")],
        "Drafts": [("d1", "\\Draft")],
    }
    for folder, items in initial.items():
        for mid, flags in items:
            ok(c.append(quote(folder), f"({flags})" if flags else None, None,
                        make(mid, f"{folder} {mid}")))
    c.logout()
    model: Model = {folder: {mid: F(flags.split()) for mid, flags in items}
                    for folder, items in initial.items()}
    model["Lists"] = {}     # CREATE Lists/Python made the parent a real (empty) mailbox

    sync(rc)
    assert_converged(server, root, model, raws)

    # ---- round 1: both sides change at once
    c = connect(server)
    ok(c.append("INBOX", r"(\Seen)", None, make("m7", "new on server")))
    ok(c.append("Work", None, None, make("w4", "new on server in Work")))
    ok(c.select("INBOX"))
    uid_of: dict[str, str] = {}
    for item in ok(c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")):
        if isinstance(item, tuple):
            m = re.search(rb"UID (\d+)", item[0])
            assert m, item[0]
            uid_of[message_id(item[1])] = m.group(1).decode()
    ok(c.uid("STORE", uid_of["m1"], "+FLAGS", r"(\Seen)"))
    ok(c.uid("STORE", uid_of["m6"], "+FLAGS", r"(\Flagged)"))      # conflict A, server half
    ok(c.uid("STORE", uid_of["m2"], "+FLAGS", r"(\Deleted)"))      # \Deleted, not expunged
    ok(c.uid("STORE", uid_of["m5"], "+FLAGS", r"(\Deleted)"))
    ok(c.expunge())                                               # m2 and m5 go now
    ok(c.uid("STORE", uid_of["m8"], "-FLAGS", r"(\Seen)"))
    ok(c.select("Work"))
    ok(c.store("2", "+FLAGS", r"(\Flagged)"))                       # w2
    ok(c.store("1", "+FLAGS", r"(\Deleted)"))                       # w1: Expunge Both removes it
    typ, data = c._simple_command("MOVE", "3", quote("Lists/Python"))  # w3
    assert typ == "OK", data
    ok(c.select(quote("Lists/Python")))
    ok(c.store("1", "+FLAGS", r"(\Seen)"))                          # p1: conflict B, server half
    raws["u8"] = msg("u8", "8-bit text from the server",
                     "Grüße aus Köln, 東京 and a tab\there.\r\n")
    ok(c.append("INBOX", None, None, raws["u8"]))
    ok(c.create("Projects"))
    ok(c.append("Projects", r"(\Answered)", None, make("j1", "in a folder made on the server")))
    c.logout()

    set_local_flags(find(root, "INBOX", "m3"), "FS")                # mark seen locally
    set_local_flags(find(root, "INBOX", "m6"), "S")                 # conflict A, local half
    find(root, "INBOX", "m4").unlink()                              # delete locally
    deliver(root, "INBOX", "1772445600.l2.testhost", make("l2", "new locally, in new/"), "new")
    deliver(root, "Work", "1772445601.l1.testhost", make("l1", "new locally, in cur/"), "cur", "S")
    set_local_flags(find(root, "Lists/Python", "p1"), "F")          # conflict B, local half
    set_local_flags(find(root, "Lists/Python", "p2"), "ST")         # trashed: expunged both sides
    set_local_flags(find(root, "Lists/Rust", "r1"), "F")            # unseen locally
    set_local_flags(find(root, "Drafts", "d1"), "DR")
    deliver(root, "Notes", "1772445602.l3.testhost", make("l3", "in a folder made locally"),
            "cur", "F")
    # A big message and one with 8-bit UTF-8 text, one from each side.
    raws["big"] = msg("big", "300 KB from the Maildir",
                      "".join(f"line {i:06d} of a long message\r\n" for i in range(10000)))
    deliver(root, "Work", "1772445603.big.testhost", raws["big"], "cur", "S")

    sync(rc)
    model = {
        "INBOX": {"m1": F({"\\Seen"}), "m3": F({"\\Flagged", "\\Seen"}),
                  "m6": F({"\\Flagged", "\\Seen"}), "m7": F({"\\Seen"}), "m8": F(),
                  "l2": F(), "u8": F()},
        "Work": {"w2": F({"\\Flagged"}), "w4": F(), "l1": F({"\\Seen"}),
                 "big": F({"\\Seen"})},
        "Lists/Python": {"p1": F({"\\Flagged", "\\Seen"}), "p3": F(),
                         "w3": F({"\\Answered"})},
        "Lists": {},
        "Lists/Rust": {"r1": F({"\\Flagged"})},
        "Drafts": {"d1": F({"\\Draft", "\\Answered"})},
        "Projects": {"j1": F({"\\Answered"})},
        "Notes": {"l3": F({"\\Flagged"})},
    }
    assert_converged(server, root, model, raws)

    # ---- round 2: nothing to do, nothing changes on either side
    before_files = {f: [p.name for p in local_files(root, f)] for f in local_folders(root)}
    _, before_server = server_state(server)
    sync(rc)
    assert {f: [p.name for p in local_files(root, f)] for f in local_folders(root)} == before_files
    _, after_server = server_state(server)
    assert after_server == before_server
    assert_converged(server, root, model, raws)


@pytest.fixture(scope="module")
def minus_server(tmp_path_factory: pytest.TempPathFactory):
    """A server that advertises LITERAL- (RFC 7888 §5) instead of LITERAL+."""
    import testserver

    srv = testserver.TestServer(tmp_path_factory.mktemp("mailbag-mbsync-minus"),
                                extra_config="[limits]\nnonsync_literal_max = 4096\n")
    with testserver.serving(srv, {USER: PASSWORD}, no_traceback=True):
        yield srv


def test_sync_with_a_literal_minus_server(minus_server, tmp_path):
    """mbsync uploads small and big messages to a LITERAL- server and all
    arrive. (isync 1.4 knows only LITERAL+, so here it falls back to
    synchronizing literals; a client that knows LITERAL- may send the small
    ones as {n+}.)"""
    root = tmp_path / "mail"
    rc = write_rc(tmp_path, root, minus_server.imap_port)
    raws = {"s1": msg("s1", "from the server")}
    c = connect(minus_server)
    assert "LITERAL-" in c.capabilities and "LITERAL+" not in c.capabilities
    ok(c.append("INBOX", r"(\Seen)", None, raws["s1"]))
    c.logout()
    sync(rc)
    raws["tiny"] = msg("tiny", "under 4096 octets")
    raws["huge"] = msg("huge", "far over 4096 octets",
                       "".join(f"row {i:05d}\r\n" for i in range(5000)))
    deliver(root, "INBOX", "1772445700.tiny.testhost", raws["tiny"], "new")
    deliver(root, "INBOX", "1772445701.huge.testhost", raws["huge"], "cur", "F")
    sync(rc)
    model: Model = {"INBOX": {"s1": F({"\\Seen"}), "tiny": F(), "huge": F({"\\Flagged"})}}
    assert_converged(minus_server, root, model, raws)
    sync(rc)
    assert_converged(minus_server, root, model, raws)
