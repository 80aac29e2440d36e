"""The fail2ban filter of docs/fail2ban.md against log lines of a real server.

The ``failregex`` is read from the document itself, ``<HOST>`` expanded the
way fail2ban does, and matched against the server's log after failed,
blocked and successful logins from chosen loopback addresses.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import testserver

DOC = Path(__file__).resolve().parents[2] / "docs" / "fail2ban.md"
# fail2ban's <HOST> (filter.d/common.conf, fail2ban 1.0): an address or name.
HOST = r"(?:::f{4,6}:)?(?P<host>[\w\-.^_]*\w)"


def failregex() -> re.Pattern[str]:
    m = re.search(r"^failregex = (.+)$", DOC.read_text(), re.M)
    assert m, "no failregex in docs/fail2ban.md"
    return re.compile(m.group(1).replace("<HOST>", HOST))


@pytest.fixture(scope="module")
def f2b_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testserver.TestServer]:
    srv = testserver.TestServer(tmp_path_factory.mktemp("mailbag-f2b"))
    srv.extra_config = "[ratelimit]\nbase_delay = 0.0\nblock_per_ip = 4\n"
    srv.write_config()
    srv.add_user("alice", "alice-pw")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def login(srv: testserver.TestServer, source: str, user: str, password: str) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.imap_port), timeout=30,
                                  source_address=(source, 0)) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        while True:
            line = f.readline()
            if line.startswith(b"a ") or not line:
                return line


def test_failregex_matches_failed_and_blocked_logins_only(f2b_server: testserver.TestServer) -> None:
    srv = f2b_server
    assert login(srv, "127.0.0.1", "alice", "alice-pw").startswith(b"a OK")
    assert login(srv, "127.0.0.11", "alice", "wrong").startswith(b"a NO")
    assert login(srv, "127.0.0.12", "nobody", "wrong").startswith(b"a NO")
    # A name that tries to plant another address in the line.
    assert login(srv, "127.0.0.13", "x rip=10.9.9.9", "wrong").startswith(b"a NO")
    for _ in range(5):                              # 4 failures, then blocked
        assert login(srv, "127.0.0.14", "alice", "wrong").startswith(b"a NO")
    lines = [ln for ln in srv.log_text().splitlines() if " mailbag.auth " in ln]
    rx = failregex()
    hits = []
    for ln in lines:
        m = rx.search(ln)
        event = ln.split()[2]
        if event in ("auth-failed", "auth-blocked"):
            assert m is not None, ln
            assert m.group("host") == re.search(r" rip=(\S+)", ln).group(1)  # type: ignore[union-attr]
            # fail2ban may have cut the date off already: still a match.
            assert rx.search(ln.split(" ", 1)[1]) is not None
            hits.append((event, m.group("host")))
        else:
            assert m is None, ln
    assert ("auth-failed", "127.0.0.11") in hits and ("auth-failed", "127.0.0.12") in hits
    assert ("auth-failed", "127.0.0.13") in hits
    assert ("auth-blocked", "127.0.0.14") in hits
    assert all(host != "10.9.9.9" for _, host in hits)
    assert any(ln.split()[2] == "auth-ok" for ln in lines)
