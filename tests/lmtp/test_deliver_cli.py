"""``mailbag deliver``: through the running server's LMTP socket, and
directly into the store when no server runs; sysexits exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import testserver
from lmtp_support import find, imap, make_message, with_store


def deliver(server, *args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailbag.cli.main", "deliver", *args,
         "--config", str(server.config_path)],
        input=data, capture_output=True, check=False, timeout=60,
    )


def test_exit_codes_through_the_running_server(lmtp_server):
    conn = imap(lmtp_server)
    conn.create("Receipts")
    conn.logout()
    # An mbox From_ line and LF line ends, as a mailbox_command gets them.
    lf = b"From sender@example.org Wed Mar  4 08:00:00 2026\n" + \
        make_message("cli lf").replace(b"\r\n", b"\n")
    r = deliver(lmtp_server, "--user", "alice", "--from", "sender@example.org", data=lf)
    assert r.returncode == 0, r.stderr
    [raw] = find(lmtp_server, "cli lf")
    assert raw.startswith(b"Return-Path: <sender@example.org>\r\n")
    assert b"From sender@example.org Wed" not in raw and b"\n" not in raw.replace(b"\r\n", b"")
    r = deliver(lmtp_server, "--user", "Alice", "--folder", "Receipts",
                data=make_message("cli folder"))
    assert r.returncode == 0, r.stderr
    assert len(find(lmtp_server, "cli folder", "Receipts")) == 1
    r = deliver(lmtp_server, "--user", "alice", "--folder", "NoSuchFolder",
                data=make_message("cli fallback"))
    assert r.returncode == 0 and len(find(lmtp_server, "cli fallback")) == 1
    assert deliver(lmtp_server, "--user", "nobody", data=make_message("x")).returncode == 67
    assert deliver(lmtp_server, "--user", "alice", data=b"").returncode == 65
    too_big = make_message("big", "b" * 300_000 + "\r\n")
    assert deliver(lmtp_server, "--user", "alice", data=too_big).returncode == 65


def test_over_quota_exit_code(lmtp_server):
    async def setup(store):
        await store.create_account("fullcli", "x")
        account = await store.get_account("fullcli")
        await store.set_quota(account.id, 100)

    with_store(lmtp_server.data_dir, setup)
    r = deliver(lmtp_server, "--user", "fullcli", data=make_message("too much"))
    assert r.returncode == 73, r.stderr


def test_direct_delivery_without_a_server(tmp_path):
    srv = testserver.TestServer(tmp_path / "offline")
    srv.write_config()
    srv.add_user("carol", "carol-pw")
    try:
        r = deliver(srv, "--user", "carol+x", data=make_message("offline one"))
        assert r.returncode == 0, r.stderr
        assert deliver(srv, "--user", "nobody", data=make_message("x")).returncode == 67

        async def inbox(store):
            account = await store.get_account("carol")
            box = await store.get_mailbox(account.id, "INBOX")
            [rec] = await store.fetch_records(box.id, [1])
            return await store.read_blob(rec.blob_id)

        raw = with_store(srv.data_dir, inbox)
        assert raw.startswith(b"Return-Path: <>\r\nDelivered-To: carol+x\r\n")
        assert raw.endswith(b"Subject: offline one\r\nDate: Wed, 04 Mar 2026 08:00:00 +0000\r\n"
                            b"Message-ID: <offline.one@example.org>\r\n\r\nHello.\r\n")
    finally:
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_store_unavailable_is_a_temporary_failure(tmp_path):
    srv = testserver.TestServer(tmp_path / "broken")
    srv.write_config()
    # data_dir is a file: the store cannot open, the MTA must retry later.
    shutil.rmtree(srv.data_dir / "mailbag.sqlite3", ignore_errors=True)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    srv.config_path.write_text(srv.config_path.read_text().replace(
        f'data_dir = "{srv.data_dir}"', f'data_dir = "{blocker}"'))
    r = deliver(srv, "--user", "carol", data=make_message("nowhere"))
    assert r.returncode == 75, r.stderr
