#!/usr/bin/env python3
"""LMTP delivery throughput: mailbag against Dovecot's LMTP on this machine.

Starts a throwaway Dovecot (lmtp only, maildir, static userdb, as in
/work/shared/reference/dovecot-on-loopback.md) and a throwaway mailbag (TCP
LMTP on a free loopback port), then delivers the same messages to each over
K connections with pipelined transactions (RFC 2920: the end of one message
and the next MAIL/RCPT/DATA go out in one write) and reports messages/s.

    .venv/bin/python bench/lmtp.py --messages 2000 --conns 4 --rcpts 1

``--rcpts R`` sends every message to R users (bench1..benchR): mailbag keeps
one message row (or blob) for all of them, Dovecot one file per user.
``--bdat W`` sends messages with BDAT (RFC 3030 CHUNKING, which both servers
offer) instead of DATA and keeps W whole transactions in flight per
connection without waiting for their replies (RFC 3030 §4.2); with DATA a
client must wait for each 354, so one message per connection is in flight.
``--profile DIR`` records a py-spy profile of mailbag during the run
(summarise it with bench/profile_top.py; the ingest worker processes are
not in it). "server CPU" is mailbag's user + system time per message, its
ingest worker processes included, split into loop (the event loop thread),
threads (the others: the SQLite writer) and workers (the ingest
processes), counted until the server is idle after the run (so the search
index written after the last reply is in it); "client" is this script's own CPU per message, which shares
the machine with the servers. Only 127.0.0.1 is used;
both servers are stopped and the temp dirs removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from dovecot import DovecotInstance  # noqa: E402
from run import (  # noqa: E402
    HOST,
    MINIMAL_ARGON2,
    TestServer,
    build_corpus,
    free_port,
    start_profile,
    stop_profile,
)

CLEANUP: list[Any] = []
FAILURES: dict[int, int] = {}


class DovecotLmtp:
    name = "dovecot"

    def __init__(self, root: Path) -> None:
        self.instance = DovecotInstance(root / "dovecot", user_var="%n")
        self.dir = self.instance.dir
        self.port = free_port()

    def start(self, users: list[str]) -> None:
        # LMTP asks only the userdb (static, every user exists).
        self.instance.start({}, f"""\
protocols = lmtp
ssl = no
default_process_limit = 5000
default_client_limit = 20000
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
""", self.port, greeting=b"220")

    def stored(self, users: list[str]) -> dict[str, int]:
        """What is on disk: one maildir file per delivery."""
        n = 0
        for u in users:
            for sub in ("new", "cur"):
                p = self.dir / "mail" / u / "Maildir" / sub
                if not p.exists():
                    p = self.dir / "mail" / u / sub
                if p.exists():
                    n += len(list(p.iterdir()))
        return {"deliveries": n, "files": n}

    @staticmethod
    def describe(stored: dict[str, int]) -> str:
        return f"{stored['files']} maildir files"

    def stop(self) -> None:
        self.instance.stop()


class MailbagLmtp:
    name = "mailbag"
    mode = "lmtp"           # the profile file name (bench/run.py start_profile)

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.srv = TestServer(root / "mailbag", argon2=dict(MINIMAL_ARGON2),
                              extra_config=f"[lmtp]\ntcp = true\nport = {self.port}\n")

    def start(self, users: list[str]) -> None:
        self.srv.write_config()
        for u in users:
            self.srv.add_user(u, "bench-Pass-1")
        self.srv.start(timeout=60)
        wait_lmtp(self.port)

    def stored(self, users: list[str]) -> dict[str, int]:
        """What is on disk: a mailbox row per delivery, a message row per
        distinct message (small ones hold their body inline, store.py
        INLINE_MAX) and a blob file only for the big ones."""
        import sqlite3
        db = sqlite3.connect(self.srv.data_dir / "mailbag.sqlite3")
        try:
            rows = db.execute("SELECT count(*) FROM mailbox_messages").fetchone()[0]
            messages, inline = db.execute(
                "SELECT count(*), count(data) FROM messages").fetchone()
        finally:
            db.close()
        blobs = sum(1 for p in (self.srv.data_dir / "blobs").glob("??/*")
                    if not p.name.startswith("."))
        return {"deliveries": int(rows), "message_rows": int(messages),
                "inline": int(inline), "blob_files": blobs}

    @staticmethod
    def describe(stored: dict[str, int]) -> str:
        return (f"{stored['deliveries']} mailbox rows, {stored['message_rows']} message rows "
                f"({stored['inline']} inline), {stored['blob_files']} blob files")

    def server_pids(self) -> list[int]:
        return [self.srv.proc.pid] if self.srv.proc else []

    def cpu_seconds(self) -> float:
        """CPU (user + system) the server used so far, its ingest worker
        processes included: on a shared machine CPU per message is steadier
        than messages per second."""
        return sum(self.cpu_parts().values())

    def cpu_parts(self) -> dict[str, float]:
        """CPU seconds so far by where it went: ``loop`` (the main thread,
        i.e. the event loop), ``threads`` (the others: the SQLite writer
        mostly) and ``workers`` (the ingest processes)."""
        parts = {"loop": 0.0, "threads": 0.0, "workers": 0.0}
        if self.srv.proc is None:
            return parts
        pid = self.srv.proc.pid
        tick = os.sysconf("SC_CLK_TCK")

        def ticks(path: Path) -> float:
            try:
                stat = path.read_text().rsplit(")", 1)[1].split()
            except OSError:
                return 0.0
            return (int(stat[11]) + int(stat[12])) / tick

        children: list[int] = []
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                children += [int(c) for c in (task / "children").read_text().split()]
                key = "loop" if task.name == str(pid) else "threads"
                parts[key] += ticks(task / "stat")
        except OSError:
            pass
        parts["workers"] = sum(ticks(Path(f"/proc/{c}/stat")) for c in children)
        return parts

    def stop(self) -> None:
        self.srv.stop()

    def log_text(self) -> str:
        return "\n".join(line for line in self.srv.log_text().splitlines()
                         if "lmtp-delivered" not in line)[-3000:]


def settled_cpu(server: Any) -> dict[str, float]:
    """The server's CPU parts once it has gone quiet after the run: work it
    deferred past the last reply (the search index of the last deliveries)
    belongs to the messages too."""
    last = server.cpu_parts()
    while True:
        time.sleep(0.25)
        now = server.cpu_parts()
        if sum(now.values()) - sum(last.values()) < 0.005:
            return now
        last = now


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
        self.lines: list[bytes] = []      # of the last reply

    async def reply(self) -> int:
        self.lines = []
        while True:
            line = await asyncio.wait_for(self.r.readline(), 120)
            if not line:
                raise ConnectionError("closed")
            self.lines.append(line[4:].strip())
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


async def bdat_sender(port: int, msgs: list[bytes], rcpts: list[str], window: int) -> int:
    """Deliver ``msgs`` with BDAT LAST, ``window`` transactions in flight."""
    r, w = await asyncio.open_connection(HOST, port, limit=1 << 20)
    rd = Reader(r)
    await rd.reply()
    w.write(b"LHLO bench.test\r\n")
    await rd.reply()
    if b"CHUNKING" not in rd.lines:
        raise RuntimeError("the server does not offer CHUNKING")
    envelope = (b"MAIL FROM:<bench@sender.test>\r\n"
                + b"".join(b"RCPT TO:<%s@example.test>\r\n" % u.encode() for u in rcpts))
    ok = sent = 0
    for done in range(len(msgs)):
        while sent < len(msgs) and sent - done < window:
            msg = msgs[sent]
            w.write(envelope + b"BDAT %d LAST\r\n" % len(msg) + msg)
            sent += 1
        for _ in range(len(rcpts) + 1):          # MAIL, RCPTs
            code = await rd.reply()
            if code >= 400:
                raise RuntimeError(f"envelope refused: {code}")
        for _ in rcpts:                          # one per recipient after BDAT LAST
            code = await rd.reply()
            if code == 250:
                ok += 1
            else:
                FAILURES[code] = FAILURES.get(code, 0) + 1
    w.write(b"QUIT\r\n")
    await rd.reply()
    w.close()
    return ok


async def drive(port: int, msgs: list[bytes], conns: int, rcpts: list[str],
                bdat: int = 0) -> tuple[float, int]:
    shares = [msgs[i::conns] for i in range(conns)]
    t0 = time.perf_counter()
    done = await asyncio.gather(*(bdat_sender(port, s, rcpts, bdat) if bdat
                                  else sender(port, s, rcpts) for s in shares if s))
    return time.perf_counter() - t0, sum(done)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--rcpts", type=int, default=1)
    ap.add_argument("--servers", default="mailbag,dovecot")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--bdat", type=int, default=0, metavar="W",
                    help="send with BDAT, W transactions in flight per connection")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="record a py-spy profile of mailbag during the run into DIR")
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
                asyncio.run(drive(server.port, msgs[:20], 1, users, args.bdat))
                spy = start_profile(server, f"c{args.conns}-r{args.rcpts}", args)
                parts0 = server.cpu_parts() if hasattr(server, "cpu_parts") else None
                try:
                    client0 = time.process_time()
                    secs, ok = asyncio.run(drive(server.port, msgs, args.conns, users,
                                                 args.bdat))
                    client = time.process_time() - client0
                finally:
                    stop_profile(spy)
                parts = ({k: v - parts0[k] for k, v in settled_cpu(server).items()}
                         if parts0 is not None else None)
                cpu = sum(parts.values()) if parts is not None else None
                stored = server.stored(users)
            finally:
                server.stop()
            expected = args.messages * len(users)
            if ok != expected:
                print(server.log_text() if hasattr(server, "log_text") else "")
                raise RuntimeError(f"{name}: {ok} of {expected} deliveries acknowledged, "
                                   f"other replies: {FAILURES}")
            results[name] = {"seconds": secs, "messages_per_s": args.messages / secs,
                             "deliveries_per_s": ok / secs, **stored}
            cpu_note = ""
            if cpu is not None:
                results[name]["server_cpu_ms_per_msg"] = cpu * 1000 / args.messages
                assert parts is not None
                split = ", ".join(f"{k} {v * 1000 / args.messages:.2f}" for k, v in parts.items())
                for k, v in parts.items():
                    results[name][f"cpu_{k}_ms_per_msg"] = v * 1000 / args.messages
                cpu_note = (f"  server CPU {cpu * 1000 / args.messages:.2f} ms/msg ({split}),"
                            f" client {client * 1000 / args.messages:.2f}")
            mode = f", BDAT window {args.bdat}" if args.bdat else ", DATA"
            print(f"{name:8s} {args.messages} messages x {len(users)} rcpt, "
                  f"{args.conns} conns{mode}: {secs:6.2f} s  {args.messages / secs:8.1f} msg/s  "
                  f"{ok / secs:8.1f} deliveries/s  (stored: {server.describe(stored)}){cpu_note}",
                  flush=True)
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
