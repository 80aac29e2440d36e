#!/usr/bin/env python3
"""LMTP delivery throughput: mailbag against Dovecot's LMTP on this machine.

Starts a throwaway Dovecot (lmtp only, maildir, static userdb, as in
/work/shared/reference/dovecot-on-loopback.md) and a throwaway mailbag (TCP
LMTP on a free loopback port), then delivers the same messages to each over
K connections with pipelined transactions (RFC 2920: the end of one message
and the next MAIL/RCPT/DATA go out in one write) and reports messages/s.

    .venv/bin/python bench/lmtp.py --messages 2000 --conns 4 --rcpts 1

``--rcpts R`` sends every message to R users (bench1..benchR): mailbag stores
one blob for all of them, Dovecot one file per user. Only 127.0.0.1 is used;
both servers are stopped and the temp dirs removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import HOST, BenchMailbag, build_corpus, free_port, pid_alive  # noqa: E402

CLEANUP: list[Any] = []
FAILURES: dict[int, int] = {}


class DovecotLmtp:
    name = "dovecot"

    def __init__(self, root: Path) -> None:
        self.dir = root / "dovecot"
        self.port = free_port()
        self.conf = self.dir / "dovecot.conf"
        self.master_pid: int | None = None

    def start(self, users: list[str]) -> None:
        d = self.dir
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for p in (d.parent.parent, d.parent, d):
            os.chmod(p, 0o755)
        shutil.chown(d / "mail", "dovecot", "dovecot")
        self.conf.write_text(f"""\
protocols = lmtp
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
mail_location = maildir:{d}/mail/%n
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
default_process_limit = 5000
default_client_limit = 20000
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/mail/%n allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
""")
        with open(d / "start.log", "wb") as out:
            r = subprocess.run(["dovecot", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("dovecot failed:\n" + (d / "start.log").read_text())
        try:
            self.master_pid = int((d / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError):
            self.master_pid = None
        wait_lmtp(self.port)

    def stored(self, users: list[str]) -> tuple[int, int]:
        """(messages delivered, files on disk)."""
        n = 0
        for u in users:
            for sub in ("new", "cur"):
                p = self.dir / "mail" / u / "Maildir" / sub
                if not p.exists():
                    p = self.dir / "mail" / u / sub
                if p.exists():
                    n += len(list(p.iterdir()))
        return n, n

    def stop(self) -> None:
        if not self.conf.exists():
            return
        subprocess.run(["dovecot", "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                       check=False)
        if self.master_pid:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and pid_alive(self.master_pid):
                time.sleep(0.1)
            if pid_alive(self.master_pid):
                os.kill(self.master_pid, signal.SIGKILL)
        self.conf.unlink(missing_ok=True)


class MailbagLmtp:
    name = "mailbag"

    def __init__(self, root: Path) -> None:
        self.srv = BenchMailbag(root / "mailbag")
        self.port = free_port()
        # Only IMAP (for the fixture) and LMTP: fixed default ports could clash.
        self.srv.extra_config = (f"[lmtp]\ntcp = true\nport = {self.port}\n"
                                 "[pop3]\nenabled = false\n[pop3s]\nenabled = false\n")
        self.srv.argon2 = "[argon2]\ntime_cost = 1\nmemory_cost = 8\nparallelism = 1\n"

    def start(self, users: list[str]) -> None:
        self.srv.write_config()
        for u in users:
            self.srv.add_user(u, "bench-Pass-1")
        self.srv.start(timeout=60)
        wait_lmtp(self.port)

    def stored(self, users: list[str]) -> tuple[int, int]:
        import sqlite3
        db = sqlite3.connect(self.srv.data_dir / "mailbag.sqlite3")
        try:
            rows = db.execute("SELECT count(*) FROM mailbox_messages").fetchone()[0]
        finally:
            db.close()
        blobs = sum(1 for p in (self.srv.data_dir / "blobs").glob("??/*")
                    if not p.name.startswith("."))
        return int(rows), blobs

    def stop(self) -> None:
        self.srv.stop()

    def log_text(self) -> str:
        return "\n".join(line for line in self.srv.log_text().splitlines()
                         if "lmtp-delivered" not in line)[-3000:]


def wait_lmtp(port: int, timeout: float = 30) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(100).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no LMTP greeting on port {port}")


def stuff(msg: bytes) -> bytes:
    if msg.startswith(b"."):
        msg = b"." + msg
    return msg.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Reader:
    def __init__(self, r: asyncio.StreamReader) -> None:
        self.r = r

    async def reply(self) -> int:
        while True:
            line = await asyncio.wait_for(self.r.readline(), 120)
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return int(line[:3])


async def sender(port: int, msgs: list[bytes], rcpts: list[str]) -> int:
    """Deliver ``msgs`` on one connection, pipelined; returns 250s for DATA."""
    r, w = await asyncio.open_connection(HOST, port, limit=1 << 20)
    rd = Reader(r)
    await rd.reply()
    w.write(b"LHLO bench.test\r\n")
    await rd.reply()
    envelope = (b"MAIL FROM:<bench@sender.test>\r\n"
                + b"".join(b"RCPT TO:<%s@example.test>\r\n" % u.encode() for u in rcpts)
                + b"DATA\r\n")
    ok = 0
    w.write(envelope)
    for i, msg in enumerate(msgs):
        for _ in range(len(rcpts) + 2):          # MAIL, RCPTs, DATA (354)
            code = await rd.reply()
            if code >= 400:
                raise RuntimeError(f"envelope refused: {code}")
        last = i == len(msgs) - 1
        # The message, and right behind it the next envelope (pipelining).
        w.write(stuff(msg) + (b"" if last else envelope))
        for _ in rcpts:
            code = await rd.reply()
            if code == 250:
                ok += 1
            else:
                FAILURES[code] = FAILURES.get(code, 0) + 1
    w.write(b"QUIT\r\n")
    await rd.reply()
    w.close()
    return ok


async def drive(port: int, msgs: list[bytes], conns: int, rcpts: list[str]) -> tuple[float, int]:
    shares = [msgs[i::conns] for i in range(conns)]
    t0 = time.perf_counter()
    done = await asyncio.gather(*(sender(port, s, rcpts) for s in shares if s))
    return time.perf_counter() - t0, sum(done)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--servers", default="mailbag,dovecot")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mailbag-lmtp-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    users = [f"bench{i + 1}" for i in range(args.rcpts)]
    msgs = build_corpus(root, args.messages)
    size = sum(map(len, msgs))
    results: dict[str, dict[str, float]] = {}
    try:
        for name in args.servers.split(","):
            server: Any = MailbagLmtp(root) if name == "mailbag" else DovecotLmtp(root)
            CLEANUP.append(server)
            server.start(users)
            try:
                # A short warm-up so process start-up is not measured.
                asyncio.run(drive(server.port, msgs[:20], 1, users))
                secs, ok = asyncio.run(drive(server.port, msgs, args.conns, users))
                stored, files = server.stored(users)
            finally:
                server.stop()
            expected = args.messages * len(users)
            if ok != expected:
                print(server.log_text() if hasattr(server, "log_text") else "")
                raise RuntimeError(f"{name}: {ok} of {expected} deliveries acknowledged, "
                                   f"other replies: {FAILURES}")
            results[name] = {"seconds": secs, "messages_per_s": args.messages / secs,
                             "deliveries_per_s": ok / secs, "stored_rows": stored,
                             "files": files}
            print(f"{name:8s} {args.messages} messages x {len(users)} rcpt, "
                  f"{args.conns} conns: {secs:6.2f} s  {args.messages / secs:8.1f} msg/s  "
                  f"{ok / secs:8.1f} deliveries/s  (files/blobs on disk: {files})", flush=True)
    finally:
        for s in CLEANUP:
            try:
                s.stop()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        shutil.rmtree(root, ignore_errors=True)
    if "mailbag" in results and "dovecot" in results:
        ratio = results["mailbag"]["messages_per_s"] / results["dovecot"]["messages_per_s"]
        print(f"ratio mailbag/dovecot: {ratio:.2f}x (target >= 3)  corpus {size / 1e6:.1f} MB")
        results["ratio"] = {"messages_per_s": ratio}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
