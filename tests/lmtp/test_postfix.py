"""A real Postfix (Debian's package) in front of mailbag: mail sent with
swaks to Postfix's SMTP port on loopback is handed over by Postfix's lmtp(8)
client, over TCP and over the Unix socket, and arrives in the IMAP INBOX.

The Postfix instance is private and throwaway: its own config_directory,
queue_directory and data_directory in a temporary folder, SMTP on a free
loopback port, chroot off, no local delivery. ``postfix start`` must run as
root (the daemons then drop to the ``postfix`` user); the test is skipped,
saying why, where Postfix is missing or cannot start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testserver
from lmtp_support import find

SKIP = None
if shutil.which("postfix") is None or shutil.which("swaks") is None:
    SKIP = "postfix or swaks is not installed (apt-get install postfix swaks)"
elif os.geteuid() != 0:
    SKIP = "postfix start needs root (its daemons then run as the postfix user)"
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def postfix(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Postfix writes its fatal errors to stderr only when it is a terminal;
    # `script` gives it one, so a failure to start explains itself.
    cmd = " ".join(["postfix", "-c", str(conf), *args])
    return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                          text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[testserver.TestServer, int, Path]]:
    # Postfix's daemons run as the postfix user: everything they open (the
    # queue, the LMTP socket) must be reachable by it, so the tree is 0755.
    root = Path(tempfile.mkdtemp(prefix="mailbag-postfix-"))
    root.chmod(0o755)
    srv = testserver.TestServer(root / "mailbag")
    lmtp_port, smtp_port = testserver.free_port(), testserver.free_port()
    sock = root / "run" / "lmtp.sock"
    srv.extra_config = (f'[lmtp]\ntcp = true\nport = {lmtp_port}\nsocket = "{sock}"\n'
                        'local_domains = ["example.test", "unix.example.test"]\n')
    srv.write_config()
    srv.add_user("alice", "alice-pw")
    srv.start()
    conf, queue, data = root / "conf", root / "queue", root / "data"
    for d in (conf, queue, data, sock.parent):
        d.mkdir(exist_ok=True)
        d.chmod(0o755)
    shutil.chown(data, "postfix")
    (conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
smtputf8_enable = yes
biff = no
# As in docs/postfix.md: mailbag is the final destination of these domains.
virtual_mailbox_domains = example.test, unix.example.test
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
transport_maps = inline:{{ unix.example.test=lmtp:unix:{sock} }}
""")
    (conf / "master.cf").write_text(MASTER_CF.format(port=smtp_port))
    started = postfix(conf, "start")
    try:
        if started.returncode != 0:
            pytest.skip(f"postfix cannot start here: {started.stdout.strip()[-500:]}")
        yield srv, smtp_port, root
    finally:
        postfix(conf, "stop")
        srv.stop()
        if "Traceback" in srv.log_text():
            print(srv.log_text())
        if os.environ.get("KEEP_POSTFIX"):
            print(root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def wait_for(server, subject: str, root: Path) -> bytes:
    # Postfix queues first and delivers moments later: poll, bounded.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = find(server, subject)
        if found:
            return found[0]
        time.sleep(0.3)
    log = (root / "maillog").read_text(errors="replace")[-3000:]
    raise AssertionError(f"{subject!r} never arrived; Postfix log:\n{log}")


@pytest.mark.parametrize("domain", ["example.test", "unix.example.test"])
def test_swaks_to_postfix_arrives_in_the_inbox(stack, domain):
    server, smtp_port, root = stack
    subject = f"through postfix {domain}"
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(smtp_port),
         "--from", "sender@elsewhere.test", "--to", f"Alice@{domain}",
         "--header", f"Subject: {subject}", "--body", "relayed by postfix"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    raw = wait_for(server, subject, root)
    assert raw.startswith(b"Return-Path: <sender@elsewhere.test>\r\n")
    assert f"Delivered-To: Alice@{domain}".encode() in raw
    assert b"by mx.example.test (Postfix)" in raw      # Postfix's own Received
    assert b"relayed by postfix" in raw


def test_postfix_bounces_an_unknown_user_at_rcpt(stack):
    server, smtp_port, root = stack
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(smtp_port),
         "--from", "", "--to", "nobody@example.test",
         "--header", "Subject: to nobody"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr    # Postfix accepts, then tries LMTP
    deadline = time.monotonic() + 90
    log = ""
    while time.monotonic() < deadline:
        log = (root / "maillog").read_text(errors="replace")
        if "nobody@example.test" in log and "status=bounced" in log:
            break
        time.sleep(0.3)
    assert "550 5.1.1 <nobody@example.test> User unknown" in log, log[-3000:]
