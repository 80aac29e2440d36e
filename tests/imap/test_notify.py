"""NOTIFY (RFC 5465) end to end: one connection sets NOTIFY and then only
reads, another one changes mailboxes; the first must be told without
sending a command (STATUS for other mailboxes, EXISTS/FETCH/EXPUNGE for the
selected one, LIST for names and subscriptions). Reads wait for an expected
line (the socket timeout is only a safety net); what must *not* be sent is
checked against a later line that is sent, never against the clock.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import pytest
from raw_imap_client import RawClient

_names = itertools.count(1)
MSG = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def box(prefix: str = "nt") -> str:
    return f"{prefix}{next(_names)}"


class Client(RawClient):
    def __init__(self, port: int, user: str = "alice", password: str = "alice-pw") -> None:
        super().__init__(port, timeout=20)
        self.run(f"LOGIN {user} {password}")

    def run(self, command: str | bytes, status: str = "OK") -> tuple[list[bytes], bytes]:
        tag, raw = self.send(command)
        untagged: list[bytes] = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" " + status.encode()), (raw, line, untagged)
                return untagged, line
            untagged.append(line)

    def append(self, mailbox: str, body: bytes = MSG, flags: str = "") -> None:
        self.run(f"APPEND {mailbox} ({flags}) {{{len(body)}+}}\r\n".encode() + body)

    def wait_for(self, pred: Callable[[bytes], bool]) -> list[bytes]:
        """Untagged lines read (without sending anything) up to and
        including the first one *pred* accepts."""
        seen: list[bytes] = []
        while True:
            line = self.line()
            seen.append(line)
            assert not re.match(rb"^t\d+ ", line), seen
            if pred(line):
                return seen

    def close(self) -> None:
        try:
            self.run("LOGOUT")
        finally:
            self.sock.close()


@pytest.fixture
def pair(server) -> Iterator[tuple[Client, Client]]:  # type: ignore[no-untyped-def]
    a, b = Client(server.imap_port), Client(server.imap_port)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def status_of(line: bytes, name: str) -> dict[str, int] | None:
    m = re.match(rb'^\* STATUS "?' + re.escape(name.encode()) + rb'"? \((.*)\)$', line)
    if not m:
        return None
    words = m[1].split()
    return {words[i].decode(): int(words[i + 1]) for i in range(0, len(words), 2)}


def test_capability_and_initial_status(pair: tuple[Client, Client]) -> None:
    a, _ = pair
    one, two = box(), box()
    a.run(f"CREATE {one}")
    a.run(f"CREATE {two}")
    a.append(one)
    untagged, _ = a.run("CAPABILITY")
    assert b" NOTIFY" in untagged[0]

    lines, _ = a.run(f"NOTIFY SET STATUS (mailboxes ({one} {two}) (MessageNew MessageExpunge))")
    st = {n: status_of(line, n) for line in lines for n in (one, two) if status_of(line, n)}
    assert st[one] is not None and st[one]["MESSAGES"] == 1 and "UIDNEXT" in st[one]
    assert st[two] is not None and st[two]["MESSAGES"] == 0 and "UIDVALIDITY" in st[two]
    assert "HIGHESTMODSEQ" not in st[one]

    lines, _ = a.run(f"NOTIFY SET STATUS (mailboxes {one} (MessageNew MessageExpunge FlagChange))")
    assert [status_of(x, one) for x in lines if status_of(x, one)][0]["HIGHESTMODSEQ"] > 0  # type: ignore[index]

    lines, _ = a.run(f"NOTIFY SET (mailboxes {one} (MessageNew MessageExpunge FlagChange))")
    assert not any(x.startswith(b"* STATUS") for x in lines)


def test_other_mailboxes_pushed_between_commands(pair: tuple[Client, Client]) -> None:
    a, b = pair
    watched, other = box(), box()
    b.run(f"CREATE {watched}")
    b.run(f"CREATE {other}")
    a.run(f"NOTIFY SET (mailboxes {watched} (MessageNew MessageExpunge FlagChange))")

    b.append(other)             # not watched: must not be reported ...
    b.append(watched)           # ... before this one is
    seen = a.wait_for(lambda x: status_of(x, watched) is not None)
    assert not any(status_of(x, other) for x in seen), seen
    first = status_of(seen[-1], watched)
    assert first is not None and first["MESSAGES"] == 1

    b.run(f"SELECT {watched}")
    b.run("STORE 1 +FLAGS (\\Flagged)")
    flagged = status_of(a.wait_for(lambda x: status_of(x, watched) is not None)[-1], watched)
    assert flagged is not None and flagged["HIGHESTMODSEQ"] > first["HIGHESTMODSEQ"]
    assert flagged["MESSAGES"] == 1

    b.run("STORE 1 +FLAGS (\\Deleted)")
    a.wait_for(lambda x: status_of(x, watched) is not None)
    b.run("EXPUNGE")
    gone = a.wait_for(lambda x: (status_of(x, watched) or {}).get("MESSAGES") == 0)
    assert gone


def test_selected_mailbox_gets_exists_fetch_expunge(pair: tuple[Client, Client]) -> None:
    a, b = pair
    sel, other = box(), box()
    b.run(f"CREATE {sel}")
    b.run(f"CREATE {other}")
    b.append(sel)
    a.run(f"SELECT {sel}")
    a.run("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
          "(personal (MessageNew MessageExpunge))")

    b.append(sel, flags="\\Seen")
    seen = a.wait_for(lambda x: b" FETCH " in x and b"UID" in x)
    assert b"* 2 EXISTS" in seen
    assert re.match(rb"^\* 2 FETCH \(.*UID \d+.*FLAGS \(.*\\Seen", seen[-1]), seen
    assert not any(status_of(x, sel) for x in seen), "no STATUS for the selected mailbox"

    b.append(other)
    assert status_of(a.wait_for(lambda x: x.startswith(b"* STATUS"))[-1], other)

    b.run(f"SELECT {sel}")
    b.run("STORE 1 +FLAGS (\\Flagged)")
    flags = a.wait_for(lambda x: x.startswith(b"* 1 FETCH"))
    # §5.1: the FETCH "MUST include UID and FLAGS".
    assert re.match(rb"^\* 1 FETCH \(UID \d+ FLAGS \(.*\\Flagged", flags[-1]), flags

    b.run("STORE 1 +FLAGS (\\Deleted)")
    b.run("EXPUNGE")
    assert a.wait_for(lambda x: x.endswith(b"EXPUNGE"))[-1] == b"* 1 EXPUNGE"
    untagged, _ = a.run("NOOP")
    assert not any(b"EXPUNGE" in x for x in untagged)   # told once, not twice


def test_selected_delayed_holds_expunge_until_a_command(pair: tuple[Client, Client]) -> None:
    a, b = pair
    sel, other = box(), box()
    b.run(f"CREATE {sel}")
    b.run(f"CREATE {other}")
    b.append(sel)
    b.append(sel)
    a.run(f"SELECT {sel}")
    a.run("NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange)) "
          f"(mailboxes {other} (MessageNew MessageExpunge))")
    b.run(f"SELECT {sel}")
    b.run("STORE 1 +FLAGS (\\Deleted)")
    a.wait_for(lambda x: x.startswith(b"* 1 FETCH"))
    b.run("EXPUNGE")
    b.append(other)               # reported after the expunge happened
    seen = a.wait_for(lambda x: status_of(x, other) is not None)
    assert not any(x.endswith(b"EXPUNGE") for x in seen), seen
    untagged, _ = a.run("NOOP")
    assert b"* 1 EXPUNGE" in untagged


def test_mailbox_names_and_subscriptions(pair: tuple[Client, Client]) -> None:
    a, b = pair
    a.run("NOTIFY SET (personal (MailboxName SubscriptionChange))")
    old, new = box("nm"), box("nm")

    def listed(name: str) -> Callable[[bytes], bool]:
        return lambda x: x.startswith(b"* LIST") and x.split(b'"/" ', 1)[1].startswith(
            name.encode())

    b.run(f"CREATE {old}")
    line = a.wait_for(listed(old))[-1]
    assert b"\\NonExistent" not in line
    b.run(f"RENAME {old} {new}")
    line = a.wait_for(listed(new))[-1]
    assert line.endswith(b'("OLDNAME" (' + old.encode() + b"))"), line
    b.run(f"SUBSCRIBE {new}")
    assert b"\\Subscribed" in a.wait_for(listed(new))[-1]
    b.run(f"UNSUBSCRIBE {new}")
    assert b"\\Subscribed" not in a.wait_for(listed(new))[-1]
    b.run(f"DELETE {new}")
    assert b"\\NonExistent" in a.wait_for(listed(new))[-1]


def test_own_changes_are_not_reported(pair: tuple[Client, Client]) -> None:
    a, b = pair
    mine, theirs = box("own"), box("own")
    a.run("NOTIFY SET (personal (MailboxName))")
    untagged, _ = a.run(f"CREATE {mine}")
    assert not any(x.startswith(b"* LIST") for x in untagged)
    b.run(f"CREATE {theirs}")
    seen = a.wait_for(lambda x: x.startswith(b"* LIST") and theirs.encode() in x)
    assert not any(mine.encode() in x for x in seen), seen


def test_notify_none_stops_notifications(pair: tuple[Client, Client]) -> None:
    a, b = pair
    watched = box()
    b.run(f"CREATE {watched}")
    a.run(f"NOTIFY SET (mailboxes {watched} (MessageNew MessageExpunge))")
    b.append(watched)
    a.wait_for(lambda x: status_of(x, watched) is not None)
    a.run("NOTIFY NONE")
    b.append(watched)             # committed and announced before its OK
    untagged, _ = a.run("NOOP")
    assert not any(x.startswith(b"* STATUS") for x in untagged), untagged


def test_delivery_by_another_process_is_pushed(server, pair: tuple[Client, Client]) -> None:  # type: ignore[no-untyped-def]
    a, _ = pair
    a.run("NOTIFY SET (inboxes (MessageNew MessageExpunge))")
    r = server.cli("deliver", "--user", "alice", stdin=MSG.decode())
    assert r.returncode == 0, r.stdout + r.stderr
    assert status_of(a.wait_for(lambda x: x.startswith(b"* STATUS"))[-1], "INBOX")


def test_notify_during_idle_reports_other_mailboxes(pair: tuple[Client, Client]) -> None:
    a, b = pair
    sel, other = box(), box()
    b.run(f"CREATE {sel}")
    b.run(f"CREATE {other}")
    a.run(f"SELECT {sel}")
    a.run(f"NOTIFY SET (selected (MessageNew (UID RFC822.SIZE) MessageExpunge)) "
          f"(mailboxes {other} (MessageNew MessageExpunge))")
    a.sock.sendall(b"i1 IDLE\r\n")
    assert a.line().startswith(b"+")
    b.append(other)
    assert status_of(a.wait_for(lambda x: x.startswith(b"* STATUS"))[-1], other)
    b.append(sel)       # in IDLE too, the new message's FETCH attributes (§4, §5.2)
    seen = a.wait_for(lambda x: b"RFC822.SIZE" in x)
    assert b"* 1 EXISTS" in seen and re.match(rb"^\* 1 FETCH \(UID \d+ RFC822.SIZE \d+\)$",
                                              seen[-1]), seen
    a.sock.sendall(b"DONE\r\n")
    assert a.wait_for(lambda x: True)[-1].startswith(b"i1 OK")


@pytest.mark.parametrize(("command", "status", "code"), [
    ("NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))", "NO", b"[BADEVENT ("),
    ("NOTIFY SET (personal (MailboxMetadataChange))", "NO", b"[BADEVENT ("),
    ("NOTIFY SET (personal (ServerMetadataChange))", "NO", b"[BADEVENT ("),
    ("NOTIFY SET (personal (NoSuchEvent))", "NO", b"[BADEVENT ("),
    ("NOTIFY SET (selected (MailboxName))", "BAD", b""),
    ("NOTIFY SET (personal (MessageNew))", "BAD", b""),
    ("NOTIFY SET (personal (FlagChange))", "BAD", b""),
    ("NOTIFY SET (personal (MessageNew (UID) MessageExpunge))", "BAD", b""),
    ("NOTIFY SET (selected NONE) (selected-delayed NONE)", "BAD", b""),
    ("NOTIFY SET (nowhere (MessageNew MessageExpunge))", "BAD", b""),
    ("NOTIFY SET (personal ())", "BAD", b""),
    ("NOTIFY SET", "BAD", b""),
    ("NOTIFY SOMETIMES", "BAD", b""),
])
def test_errors(pair: tuple[Client, Client], command: str, status: str, code: bytes) -> None:
    a, _ = pair
    _, tagged = a.run(command, status=status)
    assert code in tagged, tagged
    if code:
        assert b"MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange" in tagged


def test_mailbox_created_by_another_process_is_pushed(  # type: ignore[no-untyped-def]
        server, pair: tuple[Client, Client], tmp_path) -> None:
    a, _ = pair
    folder = box("imported")
    a.run("NOTIFY SET (personal (MailboxName))")
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(b"From a@example.org Thu Jan  1 00:00:00 2025\n" + MSG.replace(b"\r\n", b"\n"))
    r = server.cli("import", "mbox", str(mbox), "--user", "alice", "--folder", folder)
    assert r.returncode == 0, r.stdout + r.stderr
    line = a.wait_for(lambda x: x.startswith(b"* LIST") and folder.encode() in x)[-1]
    assert b"\\NonExistent" not in line


def test_own_append_copy_move_are_not_reported(pair: tuple[Client, Client]) -> None:
    """§5: "The server SHOULD omit notifying the client if the event is
    caused by this client": no STATUS for the session's own APPEND, COPY and
    MOVE into a followed mailbox, while another session's APPEND is told."""
    a, b = pair
    watched, src = box("mine"), box("mine")
    a.run(f"CREATE {watched}")
    a.run(f"CREATE {src}")
    a.append(src)
    a.append(src)
    a.run(f"SELECT {src}")
    a.run("NOTIFY SET (selected (MessageNew MessageExpunge)) "
          f"(mailboxes {watched} (MessageNew MessageExpunge FlagChange))")
    seen: list[bytes] = []
    for command in ("NOOP", "COPY 1 " + watched, "MOVE 2 " + watched, "NOOP"):
        seen += a.run(command)[0]
    a.append(watched)
    seen += a.run("NOOP")[0]
    b.append(watched)
    seen += a.wait_for(lambda x: status_of(x, watched) is not None)
    told = [st for x in seen if (st := status_of(x, watched)) is not None]
    assert len(told) == 1 and told[0]["MESSAGES"] == 4, seen


def test_change_by_another_session_during_own_append_is_reported(
        pair: tuple[Client, Client]) -> None:
    """Another session's APPEND that lands while this session's own APPEND
    is in progress still gives a STATUS (with both messages)."""
    a, b = pair
    watched = box("mine")
    b.run(f"CREATE {watched}")
    a.run(f"NOTIFY SET (mailboxes {watched} (MessageNew MessageExpunge))")
    tag, _ = a.send(f"APPEND {watched} {{{len(MSG)}}}")
    assert a.line().startswith(b"+")        # a's APPEND waits for its literal ...
    b.append(watched)                       # ... while b's is committed
    a.sock.sendall(MSG + b"\r\n")
    seen = [a.line()]
    while not seen[-1].startswith(tag + b" "):      # the STATUS may come before or after
        seen.append(a.line())
    assert seen[-1].startswith(tag + b" OK"), seen
    if not any(status_of(x, watched) for x in seen):
        seen += a.wait_for(lambda x: status_of(x, watched) is not None)
    told = [st for x in seen if (st := status_of(x, watched)) is not None]
    assert len(told) == 1 and told[0]["MESSAGES"] == 2, seen


def test_own_append_stays_own_across_a_names_event(pair: tuple[Client, Client]) -> None:
    """A mailbox created by another session while this session's APPEND runs
    makes it re-read the names before it reports; its own APPEND is still
    recognised as its own."""
    a, b = pair
    watched, other = box("mine"), box("mine")
    b.run(f"CREATE {watched}")
    a.run("NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
    tag, _ = a.send(f"APPEND {watched} {{{len(MSG)}}}")
    assert a.line().startswith(b"+")
    b.run(f"CREATE {other}")
    a.sock.sendall(MSG + b"\r\n")
    seen = [a.line()]
    while not seen[-1].startswith(tag + b" "):
        seen.append(a.line())
    b.append(watched)
    seen += a.wait_for(lambda x: status_of(x, watched) is not None)
    assert any(x.startswith(b"* LIST") and other.encode() in x for x in seen), seen
    told = [st for x in seen if (st := status_of(x, watched)) is not None]
    assert len(told) == 1 and told[0]["MESSAGES"] == 2, seen


def test_flag_change_omitted_for_selected(pair: tuple[Client, Client]) -> None:
    """SELECTED without FlagChange: another session's STORE gives no FETCH,
    between commands, at the end of a command or in IDLE (§5 "omitting the
    necessary event"); the client's own STORE and FETCH still answer the
    current flags."""
    a, b = pair
    sel = box()
    b.run(f"CREATE {sel}")
    b.append(sel)
    a.run(f"SELECT {sel}")
    a.run("NOTIFY SET (selected (MessageNew MessageExpunge))")
    b.run(f"SELECT {sel}")
    b.run("STORE 1 +FLAGS (\\Flagged)")
    b.append(sel)
    seen = a.wait_for(lambda x: x == b"* 2 EXISTS")
    assert not any(b"FETCH" in x for x in seen), seen
    b.run("STORE 1 +FLAGS (\\Answered)")
    untagged, _ = a.run("NOOP")
    assert not any(b"FETCH" in x for x in untagged), untagged
    untagged, _ = a.run("FETCH 1 FLAGS")
    assert len(untagged) == 1 and b"(\\Answered \\Flagged " in untagged[0], untagged
    untagged, _ = a.run("STORE 1 +FLAGS (\\Seen)")
    assert len(untagged) == 1 and b"(\\Answered \\Flagged \\Recent \\Seen)" in untagged[0]

    a.sock.sendall(b"i1 IDLE\r\n")
    assert a.line().startswith(b"+")
    b.run("STORE 2 +FLAGS (\\Flagged)")
    b.append(sel)
    seen = a.wait_for(lambda x: x == b"* 3 EXISTS")
    assert not any(b"FETCH" in x for x in seen), seen
    a.sock.sendall(b"DONE\r\n")
    assert a.wait_for(lambda x: True)[-1].startswith(b"i1 OK")


@pytest.mark.parametrize("notify", [
    "NOTIFY SET (personal (MailboxName))",
    "NOTIFY SET (selected NONE) (personal (MailboxName))",
    "NOTIFY NONE",
])
def test_no_selected_events_make_a_snapshot(pair: tuple[Client, Client], notify: str) -> None:
    """§3.1: without SELECTED/SELECTED-DELAYED "the client doesn't want to
    receive any <message-event>s for the currently selected mailbox", and
    NOTIFY NONE is "not interested in any kind of event": other sessions'
    changes are not sent, not even at the end of a command, until the
    implicit NOOP of a later NOTIFY SET; the client's own EXPUNGE still
    reports what it removed."""
    a, b = pair
    sel = box("snap")
    b.run(f"CREATE {sel}")
    for _ in range(3):
        b.append(sel)
    a.run(f"SELECT {sel}")
    a.run(notify)
    b.run(f"SELECT {sel}")
    b.run("STORE 2 +FLAGS (\\Flagged)")
    b.run("STORE 1 +FLAGS (\\Deleted)")
    b.run("EXPUNGE")
    b.append(sel)
    untagged, _ = a.run("NOOP")               # b's changes are committed by now
    assert untagged == [], untagged
    if "MailboxName" in notify:
        a.sock.sendall(b"i1 IDLE\r\n")
        assert a.line().startswith(b"+")
        b.append(sel)
        other = box("snap")
        b.run(f"CREATE {other}")
        seen = a.wait_for(lambda x: x.startswith(b"* LIST") and other.encode() in x)
        assert len(seen) == 1, seen
        a.sock.sendall(b"DONE\r\n")
        assert a.wait_for(lambda x: True)[-1].startswith(b"i1 OK")
    untagged, _ = a.run("STORE 3 +FLAGS (\\Deleted)")
    assert len(untagged) == 1 and untagged[0].startswith(b"* 3 FETCH (FLAGS (\\Deleted"), untagged
    untagged, _ = a.run("EXPUNGE")
    assert untagged == [b"* 3 EXPUNGE"], untagged
    # §3.1 the implicit NOOP of NOTIFY SET, even one that keeps the snapshot.
    again = notify if notify.startswith("NOTIFY SET") else \
        "NOTIFY SET (selected (MessageNew MessageExpunge))"
    untagged, _ = a.run(again)
    assert b"* 1 EXPUNGE" in untagged and any(x.endswith(b" EXISTS") for x in untagged)
    assert any(re.match(rb"^\* 1 FETCH \(UID 2 FLAGS \(\\Flagged", x)
               for x in untagged), untagged
    untagged, _ = a.run("NOOP")
    assert untagged == [], untagged
    untagged, _ = a.run("UID FETCH 1:* (FLAGS)")
    assert [x.split(b" FETCH")[0] for x in untagged] == [
        b"* %d" % i for i in range(1, len(untagged) + 1)], untagged
