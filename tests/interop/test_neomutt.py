"""Interop with neomutt, a terminal mail client, driven inside tmux.

neomutt runs for real against the test server: keys go in with ``tmux
send-keys`` and the screen comes back with ``tmux capture-pane``. Each test
waits for an expected screen (or an expected server state, read through a
second IMAP connection) with a generous deadline that is only a safety net.

What a neomutt user does, and what it proves:

* open INBOX over implicit TLS, STARTTLS and plain IMAP on loopback, and see
  the index; without the server's certificate neomutt asks before trusting it;
* read a message: its body shows, and the message is \\Seen on the server
  (after the sync for the default ``imap_peek=yes``, at once with ``no``);
* flag one message (F), delete another (d) and sync ($): \\Flagged is set and
  the deleted message expunged on the server;
* save a message (s) into a folder that does not exist yet, letting neomutt
  create it: the message is in the new folder and gone from INBOX; the same
  with a non-ASCII name (UTF8=ACCEPT), then found and opened in the folder
  browser;
* write a message, postpone it to Drafts, recall it and send it: the copy
  lands in Sent and the draft leaves Drafts;
* mail delivered over LMTP, and flags and expunges made by another client,
  reach an open neomutt by itself (IDLE, or NOOP polling with imap_idle=no);
* with the header cache and body cache on (plain, CONDSTORE and QRESYNC
  variants) a second neomutt run shows exactly the server's state after
  another client flagged, expunged and appended while it was closed.

Every account is fresh (one per test), so tests do not see each other's mail.
neomutt reads no user configuration (``-n -F <file>``, HOME in a temp dir) and
writes a debug log (``-d 5``) that failure messages quote.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import re
import shlex
import shutil
import signal
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

NEOMUTT = shutil.which("neomutt")
TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.skipif(NEOMUTT is None, reason="neomutt binary not installed (apt-get install neomutt)"),
    pytest.mark.skipif(TMUX is None, reason="tmux binary not installed (apt-get install tmux)"),
]

# A safety net only: each wait ends as soon as the expected screen or state
# shows up, normally in well under a second.
DEADLINE = 30.0
PASSWORD = "nm-secret-pw"
_ids = itertools.count()

# Rows of the index as set by index_format below: "-> " marks the cursor
# (arrow_cursor), then the message number, the status flag (%zs: N new,
# D deleted, blank when read) and the tag flag (%zt: ! flagged), the subject.
ROW = re.compile(r"^(->|  )\s*(\d+) \|(.)\|(.)\| (.*?)\s*$")


def message(subject: str, day: int, body: str | None = None, sender: str = "Erin <erin@example.org>") -> bytes:
    body = body or f"This is the body of {subject}."
    return (f"From: {sender}\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
            f"Date: Thu, {day:02d} Mar 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\n{body}\r\n").encode()


class Account:
    """A fresh user on the module's server, with an imaplib view of its mail."""

    def __init__(self, server, name: str) -> None:
        self.server, self.name = server, name
        server.add_user(name, PASSWORD)

    def imap(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.server.imap_port, timeout=10)
        c.login(self.name, PASSWORD)
        return c

    def append(self, mailbox: str, *msgs: bytes, flags: str | None = None) -> None:
        c = self.imap()
        for m in msgs:
            typ, data = c.append(mailbox, flags, None, m)
            assert typ == "OK", data
        c.logout()

    def state(self, mailbox: str = "INBOX") -> dict[str, set[str]]:
        """subject -> flags (without \\Recent) of every message in mailbox."""
        c = self.imap()
        try:
            typ, data = c.select(mailbox, readonly=True)
            assert typ == "OK", (mailbox, data)
            if int(data[0]) == 0:
                return {}
            typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK", data
            out: dict[str, set[str]] = {}
            for item in data:
                if not isinstance(item, tuple):
                    continue
                meta, header = item
                flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
                assert flags, meta
                subject = header.decode().strip().removeprefix("Subject: ")
                out[subject] = set(flags.group(1).decode().split()) - {"\\Recent"}
            return out
        finally:
            c.logout()

    def wait_state(self, check: Callable[[dict[str, set[str]]], bool], mailbox: str = "INBOX") -> dict[str, set[str]]:
        """Poll the server until check(state) holds: neomutt's command may still
        be in flight when its screen already shows the change."""
        deadline = time.monotonic() + DEADLINE
        while True:
            state = self.state(mailbox)
            if check(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"server state of {mailbox} never matched: {state}")
            time.sleep(0.1)


class Neomutt:
    """One neomutt process in its own tmux server (its own socket name, so it
    never touches the user's tmux)."""

    def __init__(self, workdir: Path, rc: str) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.rc = workdir / "muttrc"
        self.rc.write_text(rc)
        self.log_base = workdir / "neomutt.log"
        self.socket = f"mailbag-neomutt-{os.getpid()}-{next(_ids)}"
        self.running = False

    def tmux(self, *args: str) -> str:
        r = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True,
                           encoding="utf-8", errors="replace", timeout=20, check=False)
        assert r.returncode == 0, f"tmux {args}: {r.stderr}"
        return r.stdout

    def start(self) -> None:
        # -n: no system muttrc, -F: only ours; HOME keeps ~/.neomuttrc, ~/.cache
        # and friends out. neomutt is the pane's own process (exec), and the
        # pane stays after it exits (remain-on-exit) so that the last screen
        # can still be read and its exit noticed.
        conf = self.dir / "tmux.conf"
        conf.write_text("set -g remain-on-exit on\n")
        cmd = shlex.join([NEOMUTT or "neomutt", "-n", "-F", str(self.rc), "-d", "5",
                          "-l", str(self.log_base)])
        env = dict(os.environ, HOME=str(self.dir), LC_ALL="C.UTF-8", TERM="xterm")
        env.pop("TMUX", None)
        subprocess.run([TMUX, "-L", self.socket, "-f", str(conf), "new-session", "-d",
                        "-x", "200", "-y", "50", "-s", "nm", f"exec {cmd}"],
                       env=env, check=True, timeout=20)
        self.running = True
        pid, self.socket_path = self.tmux("display-message", "-p", "-t", "nm",
                                          "#{pane_pid} #{socket_path}").split(maxsplit=1)
        self.pid = int(pid)
        self.socket_path = self.socket_path.strip()

    def exited(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "nm", "#{pane_dead}").strip() == "1"

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "nm")

    def log(self) -> str:
        """neomutt's debug log (it writes <name>0, rotating older runs)."""
        path = self.log_base.with_name(self.log_base.name + "0")
        return path.read_text(errors="replace") if path.exists() else ""

    def fail(self, what: str, screen: str) -> AssertionError:
        # The protocol exchange, errors and messages; level 5 also logs every
        # redraw, which would drown them.
        wanted = re.compile(r"mutt_socket_(write|readln)_d|<[EWM1]>")
        log_tail = "\n".join([line for line in self.log().splitlines() if wanted.search(line)][-60:])
        return AssertionError(f"{what}\n--- screen ---\n{screen}\n--- neomutt log (tail) ---\n{log_tail}")

    def wait(self, check: str | Callable[[str], bool], what: str = "") -> str:
        """Wait for a screen containing *check* (or satisfying it)."""
        pred = (lambda s: check in s) if isinstance(check, str) else check
        deadline = time.monotonic() + DEADLINE
        while True:
            screen = self.screen()
            if pred(screen):
                return screen
            if self.exited():
                raise self.fail(f"neomutt exited while waiting for {what or check!r}", screen)
            if time.monotonic() > deadline:
                raise self.fail(f"timed out waiting for {what or check!r}", screen)
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        """tmux key names: 'Enter', 'C-u', or single characters."""
        self.tmux("send-keys", "-t", "nm", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "nm", "-l", text)

    def rows(self, screen: str | None = None) -> dict[str, tuple[str, str, bool]]:
        """subject -> (status flag, tag flag, has cursor) for the visible index."""
        out = {}
        for line in (screen if screen is not None else self.screen()).splitlines():
            m = ROW.match(line)
            if m:
                out[m.group(5)] = (m.group(3), m.group(4), m.group(1) == "->")
        return out

    def index(self) -> str:
        return self.wait(lambda s: bool(self.rows(s)), "the message index")

    def select(self, subject: str) -> None:
        """Move the cursor to *subject* by its number (neomutt's jump)."""
        screen = self.wait(lambda s: subject in self.rows(s), f"row {subject!r}")
        number = next(m.group(2) for line in screen.splitlines()
                      if (m := ROW.match(line)) and m.group(5) == subject)
        self.type(number)
        self.wait("Jump to message:")
        self.keys("Enter")
        self.wait(lambda s: self.rows(s).get(subject, ("", "", False))[2], f"cursor on {subject!r}")

    def quit(self) -> None:
        self.keys("q")
        deadline = time.monotonic() + DEADLINE
        while not self.exited():
            if time.monotonic() > deadline:
                raise self.fail("timed out waiting for neomutt to exit", self.screen())
            time.sleep(0.1)
        self.close()

    def close(self) -> None:
        """End the tmux server; a neomutt still running (a failed test) gets
        SIGTERM first, and SIGKILL if it hangs (it can deadlock in its signal
        handler)."""
        if not self.running:
            return
        self.running = False
        try:
            if not self.exited():
                os.kill(self.pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while not self.exited() and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not self.exited():
                    os.kill(self.pid, signal.SIGKILL)
        finally:
            subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True,
                           timeout=20, check=False)
            # tmux leaves its socket file behind.
            Path(self.socket_path).unlink(missing_ok=True)


def muttrc(account: Account, mode: str = "imaps", extra: str = "") -> str:
    """A throwaway muttrc: everything set so that neomutt never stops at a
    prompt the test does not expect."""
    srv = account.server
    cert = srv.data_dir / "tls" / "cert.pem"
    # Trusting the self-signed certificate. This neomutt is built with GnuTLS,
    # where $certificate_file is the store of certificates the user chose to
    # "(a)ccept always": a server certificate found there (byte for byte) is
    # trusted without a prompt, provided its dates are valid and it names the
    # host - mailbag's generated certificate has 127.0.0.1 in subjectAltName,
    # so $ssl_verify_host stays on. That is what a user ends up with, so the
    # tests use it. Naming cert.pem in $ssl_ca_certificates_file works too
    # (GnuTLS takes it as a trust anchor although it is no CA): mode
    # "imaps-cafile". test_untrusted_certificate_is_questioned shows that
    # without either neomutt does ask.
    trust = f'set certificate_file="{cert}"\n'
    if mode == "imaps-cafile":
        trust = f'set ssl_ca_certificates_file="{cert}"\n'
        mode = "imaps"
    if mode == "imaps":
        url = f"imaps://{account.name}@127.0.0.1:{srv.imaps_port}/"
        tls = "set ssl_force_tls=yes\n"
    elif mode == "starttls":
        url = f"imap://{account.name}@127.0.0.1:{srv.imap_port}/"
        tls = "set ssl_force_tls=yes\nset ssl_starttls=yes\n"
    else:
        # mailbag treats loopback as secure and allows LOGIN without TLS.
        url = f"imap://{account.name}@127.0.0.1:{srv.imap_port}/"
        tls = "set ssl_force_tls=no\nset ssl_starttls=no\n"
    return (
        f'set folder="{url}"\n'
        'set spoolfile="+INBOX"\n'
        f'set imap_pass="{PASSWORD}"\n'
        + tls + trust +
        "set confirmappend=no\nset confirmcreate=no\nset delete=yes\nset move=no\n"
        "set mark_old=no\nset imap_passive=no\nset sort=date\nset quit=yes\n"
        "set sleep_time=0\nset wait_key=no\nset beep=no\nset arrow_cursor=yes\n"
        'set index_format="%4C |%zs|%zt| %s"\n'
        'set record=""\nset postponed=""\nset imap_check_subscribed=no\n'
        "set mail_check_stats=no\nset ts_enabled=no\nset help=no\n"
        + extra
    )


@pytest.fixture
def account(server) -> Account:
    # One fresh account per test, so no test sees mail another one left behind.
    return Account(server, f"nm{next(_ids)}")


@pytest.fixture
def neomutt(tmp_path) -> Iterator[Callable[..., Neomutt]]:
    started: list[Neomutt] = []

    def run(account: Account, mode: str = "imaps", extra: str = "", name: str = "run") -> Neomutt:
        nm = Neomutt(tmp_path / name, muttrc(account, mode, extra))
        started.append(nm)
        nm.start()
        return nm

    yield run
    for nm in started:
        nm.close()


def server_logins(server, user: str, since: int = 0) -> list[str]:
    """The server's login lines for *user* after log offset *since*."""
    return [line for line in server.log_text()[since:].splitlines() if f" login user={user} " in line]


SEED = [message("first seeded note", 2), message("second seeded note", 3),
        message("third seeded note", 4)]
SEED_SUBJECTS = ["first seeded note", "second seeded note", "third seeded note"]


@pytest.mark.parametrize("mode", ["imaps", "imaps-cafile", "starttls", "plain"])
def test_open_inbox_shows_index(server, account, neomutt, mode):
    account.append("INBOX", *SEED)
    since = len(server.log_text())
    nm = neomutt(account, mode)
    screen = nm.index()
    screen = nm.wait(lambda s: set(SEED_SUBJECTS) <= set(nm.rows(s)), "all seeded subjects")
    rows = nm.rows(screen)
    assert [s for s in rows] == SEED_SUBJECTS, screen  # sort=date
    assert all(flag == "N" for flag, _tag, _cur in rows.values()), screen
    nm.quit()
    # The server saw the connection the way the test meant it.
    logins = server_logins(server, account.name, since)
    assert logins, server.log_text()
    assert all(("tls=no" if mode == "plain" else "tls=yes") in line for line in logins), logins


def test_untrusted_certificate_is_questioned(account, neomutt):
    """Without $certificate_file neomutt does not trust the self-signed
    certificate: it shows it and asks. Rejecting it ends the connection."""
    account.append("INBOX", *SEED)
    rc_extra = 'unset certificate_file\n'
    nm = neomutt(account, "imaps", rc_extra)
    screen = nm.wait("(r)eject", "the certificate question")
    # It is the server's certificate that is questioned: neomutt shows its
    # SHA-256 fingerprint in groups of four hex digits.
    pem = (account.server.data_dir / "tls" / "cert.pem").read_bytes()
    digest = x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex().upper()
    assert " ".join(digest[i:i + 4] for i in range(0, 32, 4)) in screen, screen
    nm.keys("r")
    # Rejected: no mailbox is open and no message was read.
    screen = nm.wait("(no mailbox)", "neomutt to give up on the mailbox")
    assert "Unable to open mailbox" in screen and not nm.rows(screen), screen


@pytest.mark.parametrize("peek", ["yes", "no"])
def test_read_message_becomes_seen(account, neomutt, peek):
    """With imap_peek=yes (the default) neomutt fetches BODY.PEEK[] and
    stores \\Seen at the next sync; with no it fetches BODY[] and the server
    sets \\Seen itself."""
    body = "Greetings from the body of the second note."
    account.append("INBOX", SEED[0], message("second seeded note", 3, body), SEED[2])
    nm = neomutt(account, "imaps", f"set imap_peek={peek}\n")
    nm.select("second seeded note")
    nm.keys("Enter")
    nm.wait(body, "the message body")
    nm.keys("q")
    nm.wait(lambda s: nm.rows(s).get("second seeded note", ("N",))[0] == " ", "the message shown as read")
    if peek == "yes":
        nm.keys("$")
    state = account.wait_state(lambda st: "\\Seen" in st["second seeded note"])
    assert state == {"first seeded note": set(), "second seeded note": {"\\Seen"},
                     "third seeded note": set()}
    nm.quit()


def test_flag_delete_and_sync(account, neomutt):
    account.append("INBOX", *SEED)
    nm = neomutt(account)
    nm.select("first seeded note")
    nm.keys("F")
    nm.wait(lambda s: nm.rows(s).get("first seeded note", ("", ""))[1] == "!", "the flag mark")
    nm.select("third seeded note")
    nm.keys("d")
    nm.wait(lambda s: nm.rows(s).get("third seeded note", ("",))[0] == "D", "the delete mark")
    nm.keys("$")
    nm.wait(lambda s: "third seeded note" not in nm.rows(s) and "first seeded note" in nm.rows(s),
            "the deleted message to leave the index")
    state = account.wait_state(lambda st: "third seeded note" not in st)
    assert state == {"first seeded note": {"\\Flagged"}, "second seeded note": set()}
    nm.quit()


def test_save_to_new_folder(account, neomutt):
    """s with a folder that does not exist: the COPY answers NO [TRYCREATE],
    neomutt asks whether to create it, CREATEs and copies again; with
    delete=yes the original is expunged at the sync."""
    account.append("INBOX", *SEED)
    nm = neomutt(account, extra="set confirmcreate=yes\n")
    nm.select("second seeded note")
    nm.keys("s")
    nm.wait("Save to mailbox", "the save prompt")
    nm.keys("C-u")
    nm.type("=Projects/Neomutt")
    nm.keys("Enter")
    nm.wait("Create", "the create-folder question")
    nm.keys("y")
    nm.wait(lambda s: nm.rows(s).get("second seeded note", ("",))[0] == "D",
            "the saved message marked deleted")
    nm.keys("$")
    nm.wait(lambda s: "second seeded note" not in nm.rows(s), "the saved message to leave INBOX")
    assert account.wait_state(lambda st: "second seeded note" not in st) == {
        "first seeded note": set(), "third seeded note": set()}
    assert account.state("Projects/Neomutt") == {"second seeded note": set()}
    nm.quit()


def test_save_and_browse_non_ascii_folder(account, neomutt):
    """neomutt ENABLEs UTF8=ACCEPT and then names folders in UTF-8 (CREATE,
    COPY, LIST, SELECT); other clients see the same folder in modified
    UTF-7. The folder browser (c, ?) lists it with its parent, and opening it
    syncs INBOX first, expunging the saved message there."""
    account.append("INBOX", *SEED)
    nm = neomutt(account, "starttls")
    nm.select("second seeded note")
    nm.keys("s")
    nm.wait("Save to mailbox", "the save prompt")
    nm.keys("C-u")
    nm.type("=Écoles/Café")
    nm.keys("Enter")
    nm.wait(lambda s: nm.rows(s).get("second seeded note", ("",))[0] == "D",
            "the saved message marked deleted")

    nm.keys("c")
    nm.wait("Open mailbox", "the change-folder prompt")
    nm.keys("?")
    # The browser starts on the (empty) list of $mailboxes; Tab switches it
    # to the server's folders.
    nm.wait("Mailboxes [", "the browser")
    nm.keys("Tab")
    nm.wait(lambda s: "Écoles/" in s and "Archive" in s, "the folder list")
    for entry, name in [("coles", "Écoles/"), ("Caf", "Café")]:
        nm.keys("/")
        nm.wait("Search for:", "the browser's search prompt")
        nm.type(entry)
        nm.keys("Enter")
        nm.wait(lambda s, name=name: any(line.startswith("->") and line.rstrip().endswith(name)
                                         for line in s.splitlines()), f"the cursor on {name}")
        nm.keys("Enter")
    screen = nm.wait(lambda s: "+Écoles/Café" in s and "second seeded note" in nm.rows(s),
                     "the new folder opened")
    assert list(nm.rows(screen)) == ["second seeded note"], screen
    assert account.state("&AMk-coles/Caf&AOk-") == {"second seeded note": set()}
    assert account.wait_state(lambda st: "second seeded note" not in st) == {
        "first seeded note": set(), "third seeded note": set()}
    nm.quit()


def test_compose_postpone_recall_and_send(account, neomutt, tmp_path):
    """Write a message (the editor is a script that adds the body), postpone
    it: neomutt APPENDs it to Drafts with \\Draft. Recall it (R) and send
    it: the copy ($record) is APPENDed to Sent with \\Seen, the draft is
    deleted from Drafts, and the "sendmail" (a script) got the message."""
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "Body written by the test editor." >> "$1"\n')
    sendmail = tmp_path / "sendmail.sh"
    outbox = tmp_path / "outbox.eml"
    sendmail.write_text(f'#!/bin/sh\ncat > "{outbox}"\n')
    for script in (editor, sendmail):
        script.chmod(0o755)
    nm = neomutt(account, "imaps", (
        f'set editor="{editor}"\nset sendmail="{sendmail}"\n'
        'set record="+Sent"\nset postponed="+Drafts"\nset recall=no\n'
        f'set from="{account.name}@example.org"\nset use_from=yes\n'
        "set edit_headers=no\nset askcc=no\nset askbcc=no\nset abort_unmodified=no\n"
        "set fast_reply=no\nset include=no\nset fcc_attach=yes\nset copy=yes\n"
        "set crypt_autosign=no\nset autocrypt=no\n"))
    nm.wait("+INBOX [Msgs:0", "the empty INBOX")

    nm.keys("m")
    nm.wait(lambda s: s.rstrip().endswith("To:"), "the To prompt")
    nm.type("friend@example.net")
    nm.keys("Enter")
    nm.wait(lambda s: s.rstrip().endswith("Subject:"), "the Subject prompt")
    nm.type("written in neomutt")
    nm.keys("Enter")
    nm.wait("friend@example.net", "the compose menu")
    nm.keys("P")
    nm.wait("Message postponed", "the index after postponing")
    drafts = account.wait_state(lambda st: "written in neomutt" in st, "Drafts")
    assert drafts == {"written in neomutt": {"\\Draft"}}

    nm.keys("R")
    nm.wait("friend@example.net", "the compose menu of the recalled draft")
    nm.keys("y")
    nm.wait(lambda _screen: outbox.exists(), "the message handed to sendmail")
    sent = account.wait_state(lambda st: "written in neomutt" in st, "Sent")
    assert sent == {"written in neomutt": {"\\Seen"}}
    assert account.wait_state(lambda st: not st, "Drafts") == {}
    mail = outbox.read_text()
    assert "Subject: written in neomutt" in mail and "Body written by the test editor." in mail
    nm.quit()


def lmtp_deliver(server, rcpt: str, msg: bytes) -> None:
    with smtplib.LMTP(str(server.data_dir / "lmtp.sock")) as lmtp:
        refused = lmtp.sendmail("sender@example.net", [rcpt], msg)
        assert not refused, refused


@pytest.mark.parametrize("idle", ["yes", "no"])
def test_changes_reach_open_neomutt(server, account, neomutt, idle):
    """A delivery over LMTP, a flag set and a message expunged by another
    client show up in an open neomutt without a key pressed: with
    imap_idle=yes through IDLE, with no through neomutt's NOOP polling
    ($timeout and $mail_check of one second)."""
    account.append("INBOX", *SEED)
    nm = neomutt(account, "starttls",
                 f"set imap_idle={idle}\nset timeout=1\nset mail_check=1\n")
    nm.wait(lambda s: set(SEED_SUBJECTS) <= set(nm.rows(s)), "all seeded subjects")
    if idle == "yes":
        # Deliver only once neomutt is idling, so that the IDLE path is the one tested.
        deadline = time.monotonic() + DEADLINE
        while not re.search(r"> a\d+ IDLE$", nm.log(), re.M):
            assert time.monotonic() < deadline, nm.log()[-3000:]
            time.sleep(0.1)

    lmtp_deliver(server, f"{account.name}@example.org", message("delivered over lmtp", 9))
    nm.wait(lambda s: "delivered over lmtp" in nm.rows(s), "the delivered message")

    c = account.imap()
    c.select("INBOX")
    typ, data = c.search(None, 'SUBJECT "first seeded note"')
    assert typ == "OK"
    c.store(data[0], "+FLAGS", r"(\Flagged)")
    nm.wait(lambda s: nm.rows(s).get("first seeded note", ("", ""))[1] == "!", "the flag from elsewhere")

    typ, data = c.search(None, 'SUBJECT "second seeded note"')
    c.store(data[0], "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.logout()
    nm.wait(lambda s: "second seeded note" not in nm.rows(s) and "delivered over lmtp" in nm.rows(s),
            "the expunge from elsewhere")
    rows = nm.rows()
    assert list(rows) == ["first seeded note", "third seeded note", "delivered over lmtp"], nm.screen()
    if idle == "yes":
        assert re.search(r"> a\d+ IDLE$", nm.log(), re.M), "neomutt never sent IDLE"
    nm.quit()


def screen_state(nm: Neomutt, screen: str) -> dict[str, set[str]]:
    """The index as IMAP flags: N means not \\Seen, ! means \\Flagged."""
    return {subject: ({"\\Seen"} if status != "N" else set()) | ({"\\Flagged"} if tag == "!" else set())
            for subject, (status, tag, _cur) in nm.rows(screen).items()}


@pytest.mark.parametrize("variant", ["hcache", "condstore", "qresync"])
def test_caches_resync_after_changes_elsewhere(account, neomutt, tmp_path, variant):
    """neomutt with header cache and body cache; while it is closed another
    client flags, marks read, expunges and appends; the next run shows
    exactly the server's state and reads the cached body without fetching it.

    neomutt's resync differs per variant: "hcache" fetches UID and FLAGS of
    all cached messages; "condstore" asks UID FETCH ... (CHANGEDSINCE m);
    "qresync" adds VANISHED to that (neomutt 2022 never uses SELECT ...
    (QRESYNC ...)). After an expunge neomutt's QRESYNC path then gives up
    ("QRESYNC failed. Reopening mailbox."): it numbers the cached UIDs 1..n
    and, following RFC 7162, does not renumber on VANISHED (EARLIER) -
    mailbag's sequence numbers (the ones of the new SELECT) are right, so the
    cached ones no longer match and neomutt downloads the headers again. A
    third run, with flag changes and an append but no expunge, shows the
    QRESYNC path succeeding without that fallback.
    """
    options = {"hcache": "", "condstore": "set imap_condstore=yes\n",
               "qresync": "set imap_condstore=yes\nset imap_qresync=yes\n"}[variant]
    hc, bc = tmp_path / "hcache", tmp_path / "bodies"
    hc.mkdir()
    bc.mkdir()
    extra = f'set header_cache="{hc}/"\nset message_cachedir="{bc}/"\n{options}'
    body = "Kept in neomutt's body cache."
    account.append("INBOX", message("cached and read", 2, body), message("to be flagged", 3),
                   message("to be read elsewhere", 4), message("to be expunged", 5))

    # Run 1: fill both caches, read one message.
    nm = neomutt(account, "imaps", extra, name="run1")
    nm.select("cached and read")
    nm.keys("Enter")
    nm.wait(body, "the message body")
    nm.keys("q")
    nm.index()
    nm.quit()
    assert any(hc.rglob("*")), "neomutt wrote no header cache"
    assert any(p.is_file() for p in bc.rglob("*")), "neomutt wrote no body cache"
    assert account.wait_state(lambda st: "\\Seen" in st["cached and read"])

    # Meanwhile, another client.
    c = account.imap()
    c.select("INBOX")
    for subject, flag in [("to be flagged", r"(\Flagged)"), ("to be read elsewhere", r"(\Seen)"),
                          ("to be expunged", r"(\Deleted)")]:
        typ, data = c.search(None, f'SUBJECT "{subject}"')
        assert typ == "OK" and data[0], data
        c.store(data[0], "+FLAGS", flag)
    c.expunge()
    c.logout()
    account.append("INBOX", message("arrived while closed", 6))
    account.append("INBOX", message("arrived flagged", 7), flags=r"(\Flagged)")
    expected = account.state()
    assert len(expected) == 5 and "to be expunged" not in expected

    # Run 2: the screen is exactly the server's state.
    nm = neomutt(account, "imaps", extra, name="run2")
    screen = nm.wait(lambda s: screen_state(nm, s) == expected, "the server's state")
    assert list(nm.rows(screen)) == ["cached and read", "to be flagged", "to be read elsewhere",
                                     "arrived while closed", "arrived flagged"], screen
    nm.select("cached and read")
    nm.keys("Enter")
    nm.wait(body, "the cached message body")
    nm.keys("q")
    nm.index()
    nm.quit()
    log = nm.log()
    if variant != "hcache":
        assert "CHANGEDSINCE" in log, "neomutt did not resync with CONDSTORE"
    if variant == "qresync":
        assert re.search(r"CHANGEDSINCE \d+ VANISHED\)", log), "neomutt did not use QRESYNC"
        assert "VANISHED (EARLIER)" in log
    # The body came from message_cachedir: run 2 never fetched a whole message.
    assert not re.search(r"UID FETCH \d+ BODY(\.PEEK)?\[\]", log), "body cache not used"

    if variant == "qresync":
        # Run 3: no expunge meanwhile, so neomutt's QRESYNC path holds.
        c = account.imap()
        c.select("INBOX")
        typ, data = c.search(None, 'SUBJECT "arrived flagged"')
        c.store(data[0], "+FLAGS", r"(\Seen)")
        typ, data = c.search(None, 'SUBJECT "to be flagged"')
        c.store(data[0], "-FLAGS", r"(\Flagged)")
        c.logout()
        account.append("INBOX", message("third run mail", 8))
        expected = account.state()
        nm = neomutt(account, "imaps", extra, name="run3")
        nm.wait(lambda s: screen_state(nm, s) == expected, "the server's state (run 3)")
        nm.quit()
        log = nm.log()
        assert re.search(r"CHANGEDSINCE \d+ VANISHED\)", log)
        assert "QRESYNC failed" not in log, log[-3000:]
