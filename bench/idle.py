#!/usr/bin/env python3
"""IDLE at scale, mailbag beside Dovecot (RFC 2177 / RFC 9051 §6.3.13 IDLE).

For each server and each connection count N: N clients log in, SELECT INBOX
and IDLE; the server's memory is read from /proc before and after they
connect (mailbag: one process's VmRSS; Dovecot: the sum over all its
processes, RSS and PSS, since it runs one ``imap`` process per connection).
Then another connection APPENDs a message, ``--rounds`` times, and the time
from sending the APPEND to the arrival of each idler's ``* n EXISTS`` in its
socket (the kernel's receive stamp, SO_TIMESTAMPNS) gives the notification
latency (p50/p99 over all idlers and rounds).

By default the load generator reads nothing until SETTLE seconds after the
APPEND's tagged OK, then collects every socket's arrival stamp (and goes on
reading as before for a server that is slower, like Dovecot's 30 s
polling). On loopback, each of the server's send() calls runs the
receiver's kernel work too; a load generator sleeping in epoll_wait adds a
wake-up of its one thread to many of them, an IPI to the other core that
10,000 separate devices would each take on their own CPU. ``--eager`` reads
each EXISTS as it arrives (the method before 2026-11-27) and also reports
when the one-thread client got to it ("read p99").

    .venv/bin/python bench/idle.py --conns 1000,10000 --tls both

The load generator is a separate process (this file with ``--client``): one
thread, non-blocking sockets under ``selectors`` (epoll), no IMAP library, TLS
by ``ssl.SSLSocket`` in non-blocking mode, so it holds no asyncio buffers and
parses nothing but the lines it waits for. It prints its own CPU time. Only
127.0.0.1 is used; every wait is bounded; servers are stopped at exit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

USER = "idleuser"
PASSWORD = "idle-Pass-1"
HOST = "127.0.0.1"
# The load generator waits this long after the APPEND's OK before reading.
SETTLE = 0.5
CONNECT_WINDOW = 64        # connections being set up at once (listen backlogs are ~100)
MESSAGE = (b"From: bench@example.org\r\nTo: idleuser@example.org\r\n"
           b"Subject: idle bench\r\nMessage-ID: <%d.idle@example.org>\r\n\r\nhello\r\n")


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------
# the load generator (runs in its own process)

# Linux SO_TIMESTAMPNS (asm-generic value; the socket module does not name
# it): the kernel stamps each received segment with its arrival time.
SO_TIMESTAMPNS = 35


class Idler:
    __slots__ = ("sock", "raw", "state", "buf", "seen", "arrived")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.raw: socket.socket | None = None   # same fd, for recvmsg under TLS
        self.state = "connect"       # connect -> handshake -> login -> idle
        self.buf = b""
        self.seen: list[float] = []       # when this process read the EXISTS
        self.arrived: list[float] = []    # when the kernel received it


def arrival(idler: Idler) -> float:
    """Kernel receive time (CLOCK_REALTIME) of the first unread segment.

    A one-thread client reads 10,000 sockets one after another, so the time
    it *reads* a notification includes its own work on the sockets before;
    the arrival stamp does not. Peeked, so recv() still gets the bytes."""
    raw = idler.raw if idler.raw is not None else idler.sock
    try:
        _, anc, _, _ = raw.recvmsg(1, 256, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return float("nan")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9
    return float("nan")


def client_main(port: int, n: int, tls: bool, rounds: int, wait: float,
                append_port: int, settle: float) -> int:
    """Connect n idlers, print READY, wait for GO on stdin, run the rounds,
    print one JSON line."""
    raise_nofile()
    sel = selectors.DefaultSelector()
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    login = b'a LOGIN %s "%s"\r\nb SELECT INBOX\r\nc IDLE\r\n' % (USER.encode(), PASSWORD.encode())
    idlers: list[Idler] = []
    ready = 0
    started = 0
    pending = 0
    errors = 0
    deadline = time.monotonic() + max(60.0, n / 20)

    def start_one() -> None:
        nonlocal started, pending
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        idler = Idler(s)
        idlers.append(idler)
        sel.register(s, selectors.EVENT_WRITE, idler)
        started += 1
        pending += 1

    def advance(idler: Idler) -> None:
        nonlocal ready, pending, errors
        s = idler.sock
        if idler.state == "connect":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            if tls:
                idler.sock = s = cctx.wrap_socket(s, do_handshake_on_connect=False)
                sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, idler)
                idler.state = "handshake"
            else:
                idler.state = "login"
                s.send(login)
                sel.modify(s, selectors.EVENT_READ, idler)
                return
        if idler.state == "handshake":
            assert isinstance(s, ssl.SSLSocket)
            try:
                s.do_handshake()
            except ssl.SSLWantReadError:
                sel.modify(s, selectors.EVENT_READ, idler)
                return
            except ssl.SSLWantWriteError:
                sel.modify(s, selectors.EVENT_WRITE, idler)
                return
            idler.state = "login"
            s.send(login)
            sel.modify(s, selectors.EVENT_READ, idler)
        while True:   # login: read until the IDLE continuation "+ "
            try:
                data = s.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                return
            if not data:
                raise ConnectionError("closed during login: " + idler.buf[-300:].decode("latin-1"))
            idler.buf += data
            if idler.buf.startswith(b"+ ") or b"\n+ " in idler.buf:
                if b"\na OK" not in idler.buf or b"\nb OK" not in idler.buf:
                    raise ConnectionError("login/select failed: " + idler.buf[-300:].decode("latin-1"))
                idler.buf = b""
                idler.state = "idle"
                s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                if tls:
                    idler.raw = socket.socket(fileno=s.fileno())
                ready += 1
                pending -= 1
                return

    # Set up the idlers, CONNECT_WINDOW at a time.
    while ready < n:
        if time.monotonic() > deadline:
            print(json.dumps({"error": f"only {ready} of {n} idlers after setup timeout"}),
                  flush=True)
            return 1
        while started < n and pending < CONNECT_WINDOW:
            start_one()
        for key, _ in sel.select(1.0):
            idler = key.data
            if idler.state == "idle":
                idler.sock.recv(65536)          # e.g. "* OK Still here"
                continue
            try:
                advance(idler)
            except (OSError, ConnectionError) as exc:
                errors += 1
                if errors > 20:
                    print(json.dumps({"error": f"too many setup errors, last: {exc}"}), flush=True)
                    return 1
                sel.unregister(idler.sock)
                idler.sock.close()
                idlers.remove(idler)
                pending -= 1
                started -= 1
    print(f"READY {ready}", flush=True)
    if sys.stdin.readline().strip() != "GO":
        return 1

    # The appender: plain TCP (on the plain port), logged in, blocking.
    ap = socket.create_connection((HOST, append_port), timeout=30)
    ap.sendall(b'x LOGIN %s "%s"\r\n' % (USER.encode(), PASSWORD.encode()))
    _read_until(ap, b"x OK")
    latencies: list[float] = []
    read_latencies: list[float] = []
    missed = 0
    cpu0 = time.process_time()
    for r in range(rounds):
        msg = MESSAGE % (time.time_ns() + r)
        t0 = time.monotonic()
        t0_wall = time.time()
        ap.sendall(b"y%d APPEND INBOX {%d+}\r\n%s\r\n" % (r, len(msg), msg))
        if settle:
            # Read nothing while the server tells the idlers (see --eager).
            _read_until(ap, b"y%d OK" % r)
            time.sleep(settle)
        got = 0
        end = t0 + wait
        while got < len(idlers) and time.monotonic() < end:
            for key, _ in sel.select(max(0.0, end - time.monotonic())):
                idler = key.data
                stamp = arrival(idler) if len(idler.arrived) == r else 0.0
                try:
                    data = idler.sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                now = time.monotonic()
                if not data:
                    sel.unregister(idler.sock)
                    continue
                if len(idler.arrived) == r:
                    idler.arrived.append(stamp)
                idler.buf = (idler.buf + data)[-200:]
                if b" EXISTS\r\n" in idler.buf and len(idler.seen) == r:
                    idler.seen.append(now)
                    idler.buf = b""
                    got += 1
        if not settle:
            _read_until(ap, b"y%d OK" % r)
        for idler in idlers:
            if len(idler.seen) == r + 1:
                read_latencies.append((idler.seen[r] - t0) * 1000)
                latencies.append((idler.arrived[r] - t0_wall) * 1000)
            else:
                missed += 1
                idler.seen.append(float("nan"))
            del idler.arrived[r + 1:]
            while len(idler.arrived) <= r:
                idler.arrived.append(float("nan"))
        time.sleep(0.3)
    cpu = time.process_time() - cpu0
    print(json.dumps({"latencies_ms": latencies, "read_latencies_ms": read_latencies,
                      "missed": missed, "idlers": len(idlers),
                      "setup_errors": errors, "client_cpu_s": cpu}), flush=True)
    for idler in idlers:
        if idler.raw is not None:
            idler.raw.detach()
        idler.sock.close()
    return 0


def _read_until(s: socket.socket, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed while waiting for {marker!r}: {buf[-200:]!r}")
        buf += data
    return buf


# --------------------------------------------------------------------------
# servers

def proc_kb(pid: int, field: str = "VmRSS") -> int:
    try:
        if field == "Pss":
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        else:
            text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(root: int) -> list[int]:
    """root and every process below it (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class MailbagServer:
    name = "mailbag"

    def __init__(self, root: Path, n: int, loop: str) -> None:
        from run import MINIMAL_ARGON2
        from testserver import TestServer

        self.srv = TestServer(
            root / "mailbag", argon2=dict(MINIMAL_ARGON2),
            extra_config=(f"[limits]\nmax_connections = {n + 100}\n"
                          f"max_connections_per_ip = {n + 100}\n"),
        )
        self.loop = loop
        self.port = self.srv.imap_port
        self.tls_port = self.srv.imaps_port

    def start(self) -> None:
        self.srv.write_config()
        self.srv.add_user(USER, PASSWORD)
        if self.loop == "asyncio":
            os.environ["MAILBAG_EVENT_LOOP"] = "asyncio"
        try:
            self.srv.start(timeout=60)
        finally:
            os.environ.pop("MAILBAG_EVENT_LOOP", None)

    def stop(self) -> None:
        self.srv.stop()

    def memory(self) -> dict[str, int]:
        assert self.srv.proc is not None
        pid = self.srv.proc.pid
        return {"rss_kb": proc_kb(pid), "pss_kb": proc_kb(pid, "Pss"), "procs": 1}


class DovecotServer:
    name = "dovecot"

    def __init__(self, root: Path, n: int, cert: tuple[Path, Path] | None) -> None:
        from dovecot import DovecotInstance
        from testserver import free_port

        self.instance = DovecotInstance(root / "dovecot")
        self.n = n
        self.cert = cert
        self.port = free_port()
        self.tls_port = free_port()

    @property
    def master_pid(self) -> int | None:
        return self.instance.master_pid

    def start(self) -> None:
        d = self.instance.dir
        d.mkdir(parents=True, exist_ok=True)
        limit = self.n + 200
        if self.cert:
            shutil.copy(self.cert[0], d / "cert.pem")
            shutil.copy(self.cert[1], d / "key.pem")
            ssl_conf = f"ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n"
        else:
            ssl_conf = "ssl = no\n"
        # Limits raised so that N connections fit: one imap process per
        # connection is Dovecot's default (and its security model).
        self.instance.start({USER: "{PLAIN}" + PASSWORD}, f"""\
protocols = imap
{ssl_conf}default_process_limit = {limit}
default_client_limit = {2 * limit + 1000}
default_vsz_limit = 0
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = {self.tls_port if self.cert else 0}
  }}
  process_limit = {limit}
}}
service imap {{
  process_limit = {limit}
}}
service anvil {{
  client_limit = {2 * limit + 1000}
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
""", self.port)

    def stop(self) -> None:
        self.instance.stop()

    def memory(self) -> dict[str, int]:
        assert self.master_pid is not None
        pids = descendants(self.master_pid)
        return {"rss_kb": sum(proc_kb(p) for p in pids),
                "pss_kb": sum(proc_kb(p, "Pss") for p in pids), "procs": len(pids)}


# --------------------------------------------------------------------------
# one measurement

def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def warm_up(port: int) -> None:
    """One full login/select/IDLE/append cycle, so that the 'before' figure
    already holds the code paths, the mailbox index and the caches."""
    s = socket.create_connection((HOST, port), timeout=30)
    s.sendall(b'a LOGIN %s "%s"\r\nb SELECT INBOX\r\n' % (USER.encode(), PASSWORD.encode()))
    _read_until(s, b"b OK")
    msg = MESSAGE % 0
    s.sendall(b"c APPEND INBOX {%d+}\r\n%s\r\nd IDLE\r\n" % (len(msg), msg))
    _read_until(s, b"+ ")
    s.sendall(b"DONE\r\ne LOGOUT\r\n")
    _read_until(s, b"e OK")
    s.close()


def measure(server: Any, n: int, tls: bool, rounds: int, wait: float,
            settle: float) -> dict[str, Any]:
    port = server.tls_port if tls else server.port
    warm_up(server.port)
    time.sleep(1.0)
    before = server.memory()
    client = subprocess.Popen(
        [sys.executable, __file__, "--client", str(port), str(n), "1" if tls else "0",
         str(rounds), str(wait), str(server.port), str(settle)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert client.stdout is not None and client.stdin is not None
        t0 = time.monotonic()
        line = client.stdout.readline()
        setup_s = time.monotonic() - t0
        if not line.startswith("READY"):
            raise RuntimeError(f"{server.name}: client failed: {line.strip()}")
        time.sleep(2.0)   # let the last sessions settle (Dovecot forks lazily)
        after = server.memory()
        client.stdin.write("GO\n")
        client.stdin.flush()
        result = json.loads(client.stdout.readline())
        client.wait(60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    lat = result["latencies_ms"]
    return {
        "server": server.name, "conns": n, "tls": tls, "setup_s": round(setup_s, 1),
        "before": before, "after": after,
        "kb_per_conn_rss": (after["rss_kb"] - before["rss_kb"]) / n,
        "kb_per_conn_pss": (after["pss_kb"] - before["pss_kb"]) / n,
        "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat, default=float("nan")),
        # Only meaningful for an eager client (the others wait SETTLE first).
        "read_p99_ms": float("nan") if settle else pct(result["read_latencies_ms"], 99),
        "missed": result["missed"], "samples": len(lat),
        "client_cpu_s": round(result["client_cpu_s"], 2),
    }


def _ms(x: float) -> str:
    return "-" if x != x else f"{x:.1f}"      # NaN: not measured


def fmt_row(r: dict[str, Any]) -> str:
    target = 40 if r["tls"] else 30
    ok = ""
    if r["server"] == "mailbag":
        ok = "ok" if r["kb_per_conn_rss"] <= target and r["p99_ms"] <= 100 and not r["missed"] \
            else "MISS"
    return (f"{r['server']:<8} {'tls' if r['tls'] else 'plain':<5} {r['conns']:>6} "
            f"{r['kb_per_conn_rss']:>10.1f} {r['kb_per_conn_pss']:>10.1f} "
            f"{r['p50_ms']:>9.1f} {r['p99_ms']:>9.1f} {_ms(r['read_p99_ms']):>9} {r['missed']:>6} "
            f"{r['after']['procs']:>6} {ok:>6}")


HEADER = (f"{'server':<8} {'conn':<5} {'N':>6} {'KB/c RSS':>10} {'KB/c PSS':>10} "
          f"{'p50 ms':>9} {'p99 ms':>9} {'read p99':>9} {'missed':>6} {'procs':>6} {'target':>6}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, n, tls, rounds, wait, append_port, settle = sys.argv[2:9]
        return client_main(int(port), int(n), tls == "1", int(rounds), float(wait),
                           int(append_port), float(settle))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", default="1000,10000", help="comma list of connection counts")
    ap.add_argument("--servers", default="mailbag,dovecot")
    ap.add_argument("--tls", choices=("no", "yes", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=3, help="APPENDs per measurement")
    ap.add_argument("--wait", type=float, default=40.0,
                    help="seconds to wait for every EXISTS (Dovecot may poll every 30 s)")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                    help="mailbag's event loop (uvloop when installed is the default)")
    ap.add_argument("--eager", action="store_true",
                    help="the load generator reads each EXISTS as it arrives, instead of "
                         "after the server has told everyone (module docstring)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    raise_nofile()
    counts = [int(x) for x in args.conns.split(",") if x]
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.tls]
    servers = [s for s in args.servers.split(",") if s]
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = Path(tempfile.mkdtemp(prefix="mailbag-idle-"))
    rows: list[dict[str, Any]] = []
    print(HEADER, flush=True)
    try:
        for n in counts:
            for tls in modes:
                for name in servers:
                    sub = tmp / f"{name}-{n}-{int(tls)}"
                    sub.mkdir()
                    cert: tuple[Path, Path] | None = None
                    if name == "mailbag":
                        server: Any = MailbagServer(sub, n, args.loop)
                    else:
                        if tls:
                            from mailbag.tls import ensure_certificate
                            c, k, _ = ensure_certificate(sub, None, None)
                            cert = (c, k)
                        server = DovecotServer(sub, n, cert)
                    server.start()
                    try:
                        row = measure(server, n, tls, args.rounds, args.wait,
                                      0.0 if args.eager else SETTLE)
                    except Exception as exc:  # noqa: BLE001 - report and go on
                        print(f"{name} n={n} tls={tls}: {exc!r}", file=sys.stderr, flush=True)
                        continue
                    finally:
                        server.stop()
                    rows.append(row)
                    print(fmt_row(row), flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
