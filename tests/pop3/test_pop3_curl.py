"""Interop with curl's POP3 client (libcurl): listing and retrieving over
pop3:// (on loopback, and with STLS forced by --ssl-reqd) and pop3s://,
custom commands (-X) and DELE."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pop3_support import append_raw, message, new_account, pop

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl binary not installed (apt-get install curl)")

BODY = b"First line.\r\n.\r\n..dots\r\nLast line.\r\n"


@pytest.fixture(scope="module")
def account(server):
    user, pw = new_account(server, "curl")
    append_raw(server, user, pw, message(1, body=BODY.decode()))
    append_raw(server, user, pw, message(2))
    return user, pw


def curl(account, *args: str) -> bytes:
    user, pw = account
    r = subprocess.run([CURL, "--silent", "--show-error", "--max-time", "20",
                        "--user", f"{user}:{pw}", *args],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 0, f"curl {args} exited {r.returncode}: {r.stderr!r}"
    return r.stdout


def sizes(server, account) -> list[bytes]:
    p = pop(server, *account)
    _, lines, _ = p.list()
    p.quit()
    return lines


def test_pop3_list(server, account):
    out = curl(account, f"pop3://127.0.0.1:{server.pop3_port}/")
    assert out.splitlines() == sizes(server, account)


def test_pop3_retr_is_byte_exact(server, account):
    out = curl(account, f"pop3://127.0.0.1:{server.pop3_port}/1")
    assert out == message(1, body=BODY.decode())


def test_pop3_with_stls_required(server, account):
    out = curl(account, "-k", "--ssl-reqd", f"pop3://127.0.0.1:{server.pop3_port}/2")
    assert out == message(2)


def test_pop3s_retr(server, account):
    out = curl(account, "-k", f"pop3s://127.0.0.1:{server.pop3s_port}/1")
    assert out == message(1, body=BODY.decode())


def test_pop3s_custom_uidl_and_top(server, account):
    out = curl(account, "-k", "-X", "UIDL", f"pop3s://127.0.0.1:{server.pop3s_port}/")
    assert len(out.splitlines()) == 2
    out = curl(account, "-k", "-X", "TOP 1 0", f"pop3s://127.0.0.1:{server.pop3s_port}/")
    assert b"Subject: POP3 test 1" in out and b"First line." not in out


def test_pop3_dele(server):
    user, pw = new_account(server, "curldel")
    append_raw(server, user, pw, message(1))
    append_raw(server, user, pw, message(2))
    curl((user, pw), "-X", "DELE", "-I", f"pop3://127.0.0.1:{server.pop3_port}/1")
    p = pop(server, user, pw)
    assert p.stat()[0] == 1
    assert b"".join(ln + b"\r\n" for ln in p.retr(1)[1]) == message(2)
    p.quit()


def test_wrong_password_fails(server, account):
    r = subprocess.run([CURL, "--silent", "--max-time", "20", "--user", f"{account[0]}:bad",
                        f"pop3://127.0.0.1:{server.pop3_port}/"],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 67          # CURLE_LOGIN_DENIED
