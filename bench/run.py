#!/usr/bin/env python3
"""Side-by-side IMAP benchmark: mailbag against Dovecot on this machine.

Starts a throwaway Dovecot (own base_dir/state_dir/mail dir, free loopback
ports) and a throwaway mailbag (tools/testserver.py), creates the same user on
both, and drives the same workload against each with a small asyncio load
generator that speaks raw IMAP over loopback sockets (no IMAP library, so the
client is cheap and never parses more than it must).

    .venv/bin/python bench/run.py --messages 20000 --hashing both --json out.json

See bench/README.md for what each figure means. Only 127.0.0.1 is used; every
loop is bounded in count and in time; Dovecot is stopped and the temporary
directories are removed at exit, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mailbox
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAKE_MBOX = Path("/work/shared/bench/make_bench_mbox.py")
sys.path.insert(0, str(ROOT / "tools"))

from dovecot import DovecotInstance  # noqa: E402
from testserver import TestServer, free_port  # noqa: E402

USER = "benchuser"
PASSWORD = "bench-Pass-1"
HOST = "127.0.0.1"
CMD_TIMEOUT = 600.0          # seconds: no single command may take longer
MINIMAL_ARGON2 = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
SMALL_RUNS = 25              # runs of the sub-millisecond FETCH figure


# --------------------------------------------------------------------------
# corpus

def build_corpus(tmp: Path, n: int) -> list[bytes]:
    """The shared benchmark mbox, cycled to ``n`` messages, CRLF line ends.
    Every copy gets its own X-Bench-Seq header so no two messages are
    byte-identical (mailbag deduplicates blobs by content hash; a benchmark
    of identical messages would flatter it)."""
    path = tmp / "corpus.mbox"
    subprocess.run([sys.executable, str(MAKE_MBOX), str(path), "4"],
                   check=True, capture_output=True)
    mb = mailbox.mbox(str(path))
    base = []
    for key in mb.keys():  # noqa: SIM118 (iterating a Mailbox yields messages)
        raw = mb.get_bytes(key).replace(b"\r\n", b"\n").replace(b"\x00", b"")
        raw = raw.replace(b"\n", b"\r\n")
        if not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        base.append(raw)
    mb.close()
    path.unlink()
    return [b"X-Bench-Seq: %d\r\n" % i + base[i % len(base)] for i in range(n)]


# --------------------------------------------------------------------------
# servers

class Dovecot:
    name = "dovecot"

    def __init__(self, root: Path, hashing: str, mail_format: str = "maildir") -> None:
        self.instance = DovecotInstance(root / "dovecot", mail_format)
        self.dir = self.instance.dir
        self.mail_format = mail_format
        self.hashing = self.mode = hashing
        self.port = free_port()

    def start(self, timeout: float = 30.0) -> None:
        if self.hashing == "shipped":
            pw = subprocess.run(["doveadm", "pw", "-s", "ARGON2ID", "-p", PASSWORD],
                                check=True, capture_output=True, text=True).stdout.strip()
        else:
            pw = "{PLAIN}" + PASSWORD
        self.instance.start({USER: pw}, f"""\
protocols = imap
ssl = no
default_process_limit = 5000
default_client_limit = 20000
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service imap {{
  process_limit = 5000
}}
protocol imap {{
  mail_max_userip_connections = 10000
}}
""", self.port, timeout=timeout)

    @property
    def master_pid(self) -> int | None:
        return self.instance.master_pid

    def log_text(self) -> str:
        return self.instance.log_text()

    def stop(self) -> None:
        self.instance.stop()

    def server_pids(self) -> list[int]:
        return [self.master_pid] if self.master_pid else []


class Mailbag:
    name = "mailbag"

    def __init__(self, root: Path, hashing: str) -> None:
        self.mode = hashing
        self.srv = TestServer(
            root / "mailbag",
            argon2=dict(MINIMAL_ARGON2) if hashing == "minimal" else None,
            # 50 clients from one address must not hit the per-IP cap.
            extra_config="[limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n",
        )
        self.port = self.srv.imap_port

    def start(self) -> None:
        self.srv.write_config()
        self.srv.add_user(USER, PASSWORD)
        self.srv.start(timeout=60)

    def stop(self) -> None:
        self.srv.stop()

    def log_text(self) -> str:
        return self.srv.log_text()[-4000:]

    def server_pids(self) -> list[int]:
        return [self.srv.proc.pid] if self.srv.proc else []


def wait_for_greeting(port: int, timeout: float, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start:\n{log()}")


# --------------------------------------------------------------------------
# a minimal raw IMAP client

class ImapError(Exception):
    pass


class Conn:
    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w
        self.buf = bytearray()
        self.pos = 0
        self.n = 0

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection(HOST, port, limit=1 << 20)
        c = cls(r, w)
        greeting = await c.read_response()
        if not greeting.startswith(b"* OK"):
            c.close()
            raise ImapError(f"bad greeting {greeting[:200]!r}")
        return c

    @classmethod
    async def login(cls, port: int) -> Conn:
        c = await cls.open(port)
        await c.ok(b'LOGIN %s "%s"' % (USER.encode(), PASSWORD.encode()))
        return c

    def next_tag(self) -> bytes:
        self.n += 1
        return b"a%d" % self.n

    async def _fill(self) -> None:
        data = await self.r.read(1 << 18)
        if not data:
            raise ImapError("connection closed by server")
        self.buf += data

    async def read_response(self) -> bytes:
        """One complete response (literals included), without the final CRLF."""
        if self.pos > (1 << 20) or (self.pos and self.pos == len(self.buf)):
            del self.buf[:self.pos]
            self.pos = 0
        start = scan = self.pos
        buf = self.buf
        while True:
            i = buf.find(b"\r\n", scan)
            if i < 0:
                scan = max(start, len(buf) - 1)
                await self._fill()
                continue
            if i > start and buf[i - 1] == 0x7D:          # "...{n}\r\n": literal follows
                j = buf.rfind(b"{", start, i)
                if j >= 0:
                    try:
                        n = int(bytes(buf[j + 1:i - 1]).rstrip(b"+"))
                    except ValueError:
                        n = -1
                    if n >= 0:
                        end = i + 2 + n
                        while len(buf) < end:
                            await self._fill()
                        scan = end
                        continue
            self.pos = i + 2
            return bytes(buf[start:i])

    async def command(self, line: bytes, keep: bool = False) -> tuple[bytes, int, list[bytes]]:
        """Send one command; returns (tagged status line, untagged count, untagged)."""
        tag = self.next_tag()
        self.w.write(tag + b" " + line + b"\r\n")
        return await self.until(tag, keep)

    def _bulk(self, prefix: bytes) -> tuple[int, bytes | None]:
        """Consume the complete, literal-free responses already buffered in
        one pass of C-speed scans: (untagged responses, tagged status or None).

        Parsing 20,000 FETCH lines one by one in Python takes the client
        longer than a fast server takes to send them, and the figure would
        then time the client; both servers get this same reader."""
        buf, pos = self.buf, self.pos
        last = buf.rfind(b"\r\n", pos)
        if last < 0:
            return 0, None
        seg = bytes(buf[pos:last + 2])
        lit = seg.find(b"}\r\n")
        if lit >= 0:                       # literals: read_response handles them
            cut = seg.rfind(b"\r\n", 0, lit)
            if cut < 0:
                return 0, None
            seg = seg[:cut + 2]
        t = 0 if seg.startswith(prefix) else seg.find(b"\r\n" + prefix)
        if t > 0:
            t += 2
        part = seg if t < 0 else seg[:t]
        count = part.startswith(b"* ") + part.count(b"\r\n* ")
        if t < 0:
            self.pos = pos + len(seg)
            return count, None
        end = seg.find(b"\r\n", t)
        self.pos = pos + end + 2
        return count, seg[t + len(prefix):end]

    async def until(self, tag: bytes, keep: bool = False) -> tuple[bytes, int, list[bytes]]:
        count = 0
        kept: list[bytes] = []
        prefix = tag + b" "
        while True:
            if not keep:
                n, status = self._bulk(prefix)
                count += n
                if status is not None:
                    return status, count, kept
            resp = await self.read_response()
            if resp.startswith(prefix):
                return resp[len(prefix):], count, kept
            if resp.startswith(b"* "):
                count += 1
                if keep:
                    kept.append(resp)
            elif resp.startswith(b"+"):
                raise ImapError(f"unexpected continuation {resp[:200]!r}")

    async def ok(self, line: bytes, keep: bool = False) -> tuple[int, list[bytes]]:
        status, count, kept = await asyncio.wait_for(self.command(line, keep), CMD_TIMEOUT)
        if not status.startswith(b"OK"):
            raise ImapError(f"{line[:80]!r} -> {status[:300]!r}")
        return count, kept

    async def logout(self) -> None:
        try:
            await asyncio.wait_for(self.command(b"LOGOUT"), 30)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.w.close()
        except Exception:
            pass


def exists_of(untagged: list[bytes]) -> int:
    n = -1
    for u in untagged:
        m = re.match(rb"\* (\d+) EXISTS", u)
        if m:
            n = int(m.group(1))
    return n


def search_hits(untagged: list[bytes]) -> int:
    for u in untagged:
        if u.startswith(b"* SEARCH"):
            return len(u.split()) - 2
    return -1


# --------------------------------------------------------------------------
# workload

def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass
class Result:
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, key: str, value: float, runs: list[float], **extra: Any) -> None:
        self.figures[key] = {"value": value, "runs": runs, **extra}


async def append_phase(port: int, msgs: list[bytes], conns: int, window: int,
                       slices: int, res: Result) -> None:
    """Fill INBOX with pipelined LITERAL+ APPENDs on `conns` connections,
    `window` commands in flight on each; timed per slice of the corpus."""
    cs = [await Conn.login(port) for _ in range(conns)]
    errors: list[bytes] = []

    async def pump(c: Conn, part: list[bytes]) -> None:
        sem = asyncio.Semaphore(window)
        total = len(part)

        async def reader() -> None:
            try:
                for _ in range(total):
                    while True:
                        resp = await c.read_response()
                        if not resp.startswith(b"* "):
                            break
                    if b" OK" not in resp[:20]:
                        errors.append(resp[:300])
                    sem.release()
            finally:
                for _ in range(window + 1):   # unblock the writer if we died
                    sem.release()

        rt = asyncio.create_task(reader())
        try:
            for m in part:
                await sem.acquire()
                if rt.done():
                    break
                c.w.writelines((b"%s APPEND INBOX {%d+}\r\n" % (c.next_tag(), len(m)), m, b"\r\n"))
                if c.w.transport.get_write_buffer_size() > (1 << 20):
                    await c.w.drain()
            await rt
        finally:
            rt.cancel()

    runs = []
    per = -(-len(msgs) // slices)
    for s in range(slices):
        chunk = msgs[s * per:(s + 1) * per]
        if not chunk:
            continue
        parts = [chunk[i::conns] for i in range(conns)]
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(pump(c, p) for c, p in zip(cs, parts, strict=False))),
                               CMD_TIMEOUT)
        runs.append(len(chunk) / (time.perf_counter() - t0))
    for c in cs:
        await c.logout()
    if errors:
        raise ImapError(f"{len(errors)} APPENDs failed, first: {errors[0]!r}")
    res.add("append", median(runs), runs, unit="msg/s", higher_better=True)


async def timed(c: Conn, line: bytes, repeat: int, keep: bool = False,
                before: bytes | None = None) -> tuple[list[float], int, list[bytes]]:
    runs: list[float] = []
    count, kept = 0, []
    for _ in range(repeat):
        if before is not None:
            await c.ok(before)
        t0 = time.perf_counter()
        count, kept = await c.ok(line, keep)
        runs.append((time.perf_counter() - t0) * 1000)
    return runs, count, kept


async def mailbox_phase(port: int, n: int, repeat: int, res: Result, phase: Any) -> None:
    """``phase(name)`` is an async context manager around each figure
    (py-spy profiling with --profile)."""
    # SELECT on a fresh connection each time (the login is not timed).
    runs = []
    exists = -1
    async with phase("select"):
        for _ in range(repeat):
            c = await Conn.login(port)
            t0 = time.perf_counter()
            _, kept = await c.ok(b"SELECT INBOX", keep=True)
            runs.append((time.perf_counter() - t0) * 1000)
            exists = exists_of(kept)
            await c.logout()
    if exists != n:
        raise ImapError(f"SELECT INBOX: {exists} EXISTS, expected {n}")
    res.add("select", median(runs), runs, unit="ms", exists=exists)

    c = await Conn.login(port)
    await c.ok(b"SELECT INBOX")
    async with phase("uid_fetch_flags"):
        runs, count, _ = await timed(c, b"UID FETCH 1:* (FLAGS)", repeat)
    res.add("uid_fetch_flags", median(runs), runs, unit="ms", responses=count)

    first = max(1, n - 49)
    async with phase("fetch_env_bs_50"):
        # A sub-millisecond figure: R runs are too few for a steady median.
        runs, count, _ = await timed(c, b"FETCH %d:* (ENVELOPE BODYSTRUCTURE)" % first,
                                     max(repeat, SMALL_RUNS))
    res.add("fetch_env_bs_50", median(runs), runs, unit="ms", responses=count)

    async with phase("search_from"):
        runs, _, kept = await timed(c, b'SEARCH FROM "warsaw"', repeat, keep=True)
    res.add("search_from", median(runs), runs, unit="ms", hits=search_hits(kept))

    async with phase("search_body"):
        runs, _, kept = await timed(c, b"SEARCH BODY dingus", repeat, keep=True)
    res.add("search_body", median(runs), runs, unit="ms", hits=search_hits(kept))

    async with phase("store_seen_all"):
        runs, count, _ = await timed(c, b"STORE 1:* +FLAGS (\\Seen)", repeat,
                                     before=b"STORE 1:* -FLAGS.SILENT (\\Seen)")
    res.add("store_seen_all", median(runs), runs, unit="ms", responses=count)
    await c.logout()


async def login_phase(port: int, count: int, limit_s: float, res: Result) -> None:
    """Sequential connect + LOGIN + LOGOUT; the LOGIN round trip is timed."""
    runs = []
    deadline = time.monotonic() + limit_s
    for _ in range(count):
        c = await Conn.open(port)
        t0 = time.perf_counter()
        await c.ok(b'LOGIN %s "%s"' % (USER.encode(), PASSWORD.encode()))
        runs.append((time.perf_counter() - t0) * 1000)
        await c.logout()
        if time.monotonic() > deadline:
            break
    res.add("login", median(runs), runs, unit="ms")


SMALL_MSG = (b"From: Load <load@example.org>\r\nTo: benchuser@example.org\r\n"
             b"Subject: load cycle\r\nMessage-ID: <%d.%d@load.example>\r\n\r\n"
             b"This message is appended and expunged by the many-clients figure.\r\n")


async def many_clients_phase(port: int, n: int, clients: int, seconds: float,
                             res: Result) -> None:
    """C clients, each looping for T seconds over: connect, LOGIN, SELECT INBOX,
    FETCH 10 messages (UID FLAGS RFC822.SIZE ENVELOPE), STORE +FLAGS.SILENT
    (\\Flagged) on them, APPEND one small message, UID STORE it \\Deleted,
    EXPUNGE, LOGOUT. The mailbox ends at the size it started with."""
    done = 0
    lat: list[float] = []
    errors: list[str] = []
    t_start = time.perf_counter()
    deadline = t_start + seconds

    async def client(k: int) -> None:
        nonlocal done
        rng = random.Random(k)
        i = 0
        while time.perf_counter() < deadline and i < 1_000_000:
            i += 1
            t0 = time.perf_counter()
            try:
                c = await asyncio.wait_for(Conn.login(port), 120)
                await c.ok(b"SELECT INBOX")
                a = rng.randint(1, max(1, n - 9))
                b = min(n, a + 9)
                await c.ok(b"FETCH %d:%d (UID FLAGS RFC822.SIZE ENVELOPE)" % (a, b))
                await c.ok(b"STORE %d:%d +FLAGS.SILENT (\\Flagged)" % (a, b))
                msg = SMALL_MSG % (k, i)
                status, _, _ = await asyncio.wait_for(
                    c.command(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg), CMD_TIMEOUT)
                m = re.search(rb"APPENDUID \d+ (\d+)", status)
                if not status.startswith(b"OK") or not m:
                    raise ImapError(f"APPEND -> {status[:200]!r}")
                await c.ok(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % m.group(1))
                await c.ok(b"EXPUNGE")
                await c.logout()
            except (TimeoutError, ImapError, OSError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                if len(errors) > 50:
                    return
                continue
            done += 1
            lat.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - t_start
    lat.sort()
    p95 = lat[int(len(lat) * 0.95)] if lat else float("nan")
    res.add("many_clients", done / elapsed, [done / elapsed], unit="cycles/s",
            higher_better=True, clients=clients, seconds=round(elapsed, 2),
            cycles=done, errors=len(errors), first_error=errors[0] if errors else None,
            cycle_ms_p50=round(median(lat), 1), cycle_ms_p95=round(p95, 1))


def start_profile(server: Any, phase: str, args: argparse.Namespace) -> Any:
    """py-spy on the mailbag process for one phase (--profile DIR): collapsed
    stacks in DIR/<mode>-<phase>.txt; bench/profile_top.py summarises them."""
    if not args.profile or server.name != "mailbag" or not server.server_pids():
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"{server.mode}-{phase.replace(' ', '_')}.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(server.server_pids()[0]),
                             "--rate", "250", "--format", "raw", "--nonblocking",
                             "--threads", "-o", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)   # let it attach
    return proc


def stop_profile(proc: Any) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def workload(server: Any, msgs: list[bytes], args: argparse.Namespace) -> Result:
    res = Result()
    port = server.port
    n = len(msgs)

    @contextlib.asynccontextmanager
    async def phase(name: str) -> Any:
        spy = start_profile(server, name, args)
        try:
            yield
        finally:
            stop_profile(spy)

    async def step(name: str, coro: Any, profile: bool = True) -> None:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        async with (phase(name) if profile else contextlib.nullcontext()):
            await coro
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        log(f"  {server.name}: {name} done in {wall:.1f}s (bench client CPU {cpu / wall:.0%})")

    if "append" in args.figures:
        await step("append", append_phase(port, msgs, args.append_conns, args.window,
                                          args.repeat, res))
    if "mailbox" in args.figures:
        await step("mailbox figures", mailbox_phase(port, n, args.repeat, res, phase),
                   profile=False)
    if "login" in args.figures:
        await step("login", login_phase(port, args.logins, 30.0, res))
    if "many" in args.figures:
        await step("many clients", many_clients_phase(port, n, args.clients,
                                                      args.seconds, res))
    return res


# --------------------------------------------------------------------------
# reporting

FIGURES = [
    # key, label, higher_is_better
    ("append", "APPEND pipelined (msg/s)", True),
    ("select", "SELECT INBOX (ms)", False),
    ("uid_fetch_flags", "UID FETCH 1:* (FLAGS) (ms)", False),
    ("fetch_env_bs_50", "FETCH newest 50 ENVELOPE+BODYSTRUCTURE (ms)", False),
    ("search_from", "SEARCH FROM (ms)", False),
    ("search_body", "SEARCH BODY (ms)", False),
    ("store_seen_all", "STORE 1:* +FLAGS (\\Seen) (ms)", False),
    ("login", "LOGIN round trip (ms)", False),
    ("many_clients", "many clients (cycles/s)", True),
]
TARGET = {"append": 3.0, "select": 3.0}


def ratio(key: str, mb: dict | None, dc: dict | None, higher: bool) -> float | None:
    if not mb or not dc or not mb["value"] or not dc["value"]:
        return None
    return mb["value"] / dc["value"] if higher else dc["value"] / mb["value"]


def fmt(v: float | None) -> str:
    if v is None or v != v:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(mode: str, results: dict[str, Result], n: int) -> tuple[str, list[dict]]:
    rows = []
    lines = [f"\n== hashing={mode}  messages={n}  (ratio = mailbag speed / dovecot speed;"
             " >1 means mailbag faster)",
             f"{'figure':46} {'mailbag':>10} {'dovecot':>10} {'ratio':>7}  target"]
    for key, label, higher in FIGURES:
        mb = results.get("mailbag", Result()).figures.get(key)
        dc = results.get("dovecot", Result()).figures.get(key)
        if not mb and not dc:
            continue
        r = ratio(key, mb, dc, higher)
        need = TARGET.get(key, 1.0)
        verdict = "-" if r is None else ("ok" if r >= need else f"MISS (<{need:g}x)")
        lines.append(f"{label:46} {fmt(mb and mb['value']):>10} {fmt(dc and dc['value']):>10}"
                     f" {fmt(r):>7}  {verdict}")
        rows.append({"figure": key, "label": label, "mailbag": mb, "dovecot": dc,
                     "ratio": r, "target": need})
    notes = []
    for key in ("search_from", "search_body", "uid_fetch_flags", "fetch_env_bs_50",
                "store_seen_all", "select"):
        mb = results.get("mailbag", Result()).figures.get(key, {})
        dc = results.get("dovecot", Result()).figures.get(key, {})
        for attr in ("hits", "responses", "exists"):
            if attr in mb and attr in dc and mb[attr] != dc[attr]:
                notes.append(f"  NOTE {key}: {attr} differ: mailbag {mb[attr]}, dovecot {dc[attr]}")
    for s in ("mailbag", "dovecot"):
        mc = results.get(s, Result()).figures.get("many_clients")
        if mc:
            notes.append(f"  {s} many clients: {mc['cycles']} cycles in {mc['seconds']}s,"
                         f" p50 {mc['cycle_ms_p50']} ms, p95 {mc['cycle_ms_p95']} ms,"
                         f" errors {mc['errors']}"
                         + (f" (first: {mc['first_error']})" if mc['errors'] else ""))
    return "\n".join(lines + notes), rows


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# main

RUNNING: list[Any] = []


def stop_all() -> None:
    while RUNNING:
        s = RUNNING.pop()
        try:
            s.stop()
        except Exception as e:  # keep going: the others must stop too
            log(f"stopping {s.name}: {e}")


def on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--hashing", choices=("shipped", "minimal", "both"), default="both")
    ap.add_argument("--servers", default="mailbag,dovecot",
                    help="comma list of mailbag,dovecot")
    ap.add_argument("--figures", default="append,mailbox,login,many",
                    help="comma list of append,mailbox,login,many (mailbox needs append)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timed figure (median)")
    ap.add_argument("--append-conns", type=int, default=4)
    ap.add_argument("--window", type=int, default=50, help="APPENDs in flight per connection")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=8.0, help="many-clients duration")
    ap.add_argument("--logins", type=int, default=10, help="sequential LOGINs timed")
    ap.add_argument("--dovecot-mail", choices=("maildir", "sdbox", "mdbox"), default="maildir",
                    help="Dovecot mail storage format (reference doc: maildir)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="record py-spy profiles of mailbag per phase into DIR")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    args = ap.parse_args()
    args.figures = set(args.figures.split(","))
    servers = [s for s in args.servers.split(",") if s]
    modes = ["shipped", "minimal"] if args.hashing == "both" else [args.hashing]
    if not 1 <= args.messages <= 1_000_000:
        ap.error("--messages must be 1..1000000")

    signal.signal(signal.SIGTERM, on_sigterm)
    # Also when started in the background, where SIGINT may be inherited ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix="mailbag-bench-"))
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "messages": args.messages, "args": {k: (sorted(v) if isinstance(v, set) else str(v))
                                            for k, v in vars(args).items()},
        "modes": {},
    }
    tables = []
    try:
        log(f"building corpus of {args.messages} messages ...")
        msgs = build_corpus(tmp, args.messages)
        log(f"  {sum(map(len, msgs)) / 1e6:.1f} MB")
        for mode in modes:
            results: dict[str, Result] = {}
            for name in servers:
                root = tmp / f"{mode}-{name}"
                root.mkdir()
                srv = Dovecot(root, mode, args.dovecot_mail) if name == "dovecot" else Mailbag(root, mode)
                log(f"[{mode}] starting {name} ...")
                RUNNING.append(srv)
                srv.start()
                try:
                    results[name] = asyncio.run(workload(srv, msgs, args))
                except Exception:
                    log(f"{name} log tail:\n{srv.log_text()}")
                    raise
                finally:
                    stop_all()
                    if not args.keep:
                        shutil.rmtree(root, ignore_errors=True)
            text, rows = table(mode, results, args.messages)
            print(text, flush=True)
            tables.append(text)
            out["modes"][mode] = {"rows": rows,
                                  "raw": {k: v.figures for k, v in results.items()}}
        if args.json:
            args.json.write_text(json.dumps(out, indent=2, default=str))
            log(f"wrote {args.json}")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
