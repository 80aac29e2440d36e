"""Interop with fetchmail: keep mode (messages stay, UIDL tells fetchmail
which it already has, across runs) and non-keep mode (messages are deleted
after delivery), over plain POP3 and over pop3s. Messages are handed to an
MDA that writes one file per message."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pop3_support import append_raw, message, new_account, pop

FETCHMAIL = shutil.which("fetchmail")
pytestmark = pytest.mark.skipif(FETCHMAIL is None,
                                reason="fetchmail not installed (apt-get install fetchmail)")


class Fetchmail:
    def __init__(self, home: Path, port: int, user: str, password: str, options: str) -> None:
        self.home = home
        self.out = home / "delivered"
        self.out.mkdir(parents=True)
        mda = home / "deliver.sh"
        mda.write_text(f'#!/bin/sh\ncat > "$(mktemp {self.out}/m.XXXXXX)"\n')
        mda.chmod(0o700)
        self.rc = home / "fetchmailrc"
        self.rc.write_text(
            "set no syslog\n"
            "set no bouncemail\n"
            f'set idfile "{home}/fetchids"\n'
            f"poll 127.0.0.1 proto POP3 port {port} uidl\n"
            f'  user "{user}" there password "{password}"\n'
            f'  {options} mda "{mda}"\n'
        )
        self.rc.chmod(0o600)

    def run(self) -> int:
        env = dict(os.environ, HOME=str(self.home))
        r = subprocess.run([FETCHMAIL, "-f", str(self.rc), "--pidfile", str(self.home / "pid"),
                            "-v"], capture_output=True, text=True, timeout=60, env=env,
                           check=False)
        # 0: mail delivered, 1: no mail; anything else is a failure.
        assert r.returncode in (0, 1), f"fetchmail exited {r.returncode}:\n{r.stdout}{r.stderr}"
        return r.returncode

    def delivered(self) -> list[bytes]:
        return sorted(p.read_bytes() for p in self.out.iterdir())


def bodies(files: list[bytes]) -> set[bytes]:
    """The Subject lines fetchmail delivered (it adds its own headers)."""
    return {line for f in files for line in f.splitlines() if line.startswith(b"Subject:")}


def test_keep_mode_fetches_each_message_once(server, tmp_path):
    user, pw = new_account(server, "fmkeep")
    append_raw(server, user, pw, message(1))
    append_raw(server, user, pw, message(2))
    fm = Fetchmail(tmp_path, server.pop3_port, user, pw, 'keep sslproto ""')
    assert fm.run() == 0
    assert bodies(fm.delivered()) == {b"Subject: POP3 test 1", b"Subject: POP3 test 2"}
    # Nothing new: UIDL tells fetchmail it has both already.
    assert fm.run() == 1
    assert len(fm.delivered()) == 2
    append_raw(server, user, pw, message(3))
    assert fm.run() == 0
    assert len(fm.delivered()) == 3
    assert bodies(fm.delivered()) == {b"Subject: POP3 test 1", b"Subject: POP3 test 2",
                                      b"Subject: POP3 test 3"}
    p = pop(server, user, pw)
    assert p.stat()[0] == 3                       # all kept on the server
    p.quit()


def test_nokeep_mode_over_pop3s_deletes_after_delivery(server, tmp_path):
    user, pw = new_account(server, "fmdel")
    for n in (1, 2, 3):
        append_raw(server, user, pw, message(n, body=f".dotted {n}\r\nline\r\n"))
    fm = Fetchmail(tmp_path, server.pop3s_port, user, pw, "nokeep ssl no sslcertck")
    assert fm.run() == 0
    files = fm.delivered()
    assert len(files) == 3
    for n in (1, 2, 3):
        assert any(f.endswith(f"\n.dotted {n}\nline\n".encode())
                   or f.endswith(f"\r\n.dotted {n}\r\nline\r\n".encode()) for f in files)
    p = pop(server, user, pw)
    assert p.stat() == (0, 0)
    p.quit()
    assert fm.run() == 1
