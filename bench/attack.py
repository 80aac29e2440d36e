"""Password-spray simulation against a throwaway mailbag on loopback (issue 4).

    .venv/bin/python bench/attack.py                 # 20,000 guesses, 1,000 accounts
    .venv/bin/python bench/attack.py --guesses 2000 --accounts 100 --sources 100

Loopback only and bounded: the server is started here on 127.0.0.1 (via
tools/testserver.py), every client socket is bound to an address in
127.0.0.0/8 (Linux routes the whole /8 to lo), and the run stops after
``--max-seconds`` whatever happens.

The attacker tries ``--passwords`` common passwords on each of ``--accounts``
accounts, password by password (how sprayers work), spread over ``--sources``
addresses in ``--networks`` different /24s, so that each address, network and
account sees only a few guesses: no per-address, per-network or per-account
limit is reached and only the global view (spray mode) can catch it. A few
accounts really use one of the sprayed passwords ("weak" accounts).

Meanwhile legitimate clients keep logging in (LOGIN, SELECT INBOX, LOGOUT, in
a loop): some with their account's main password, some with an app password
(devices), a few of those from inside the attacker's networks.

Reported: guesses accepted (must be 0 beyond the weak accounts' real
passwords), guesses refused/delayed/not attempted in time, legitimate logins
refused (must be 0 for app-password devices) and their latency, and the
server's resident memory (VmRSS) before, at peak and after.

Cheap on purpose, so it finishes in a few minutes on 2 cores: argon2 with
t=1, m=1 MiB, p=1 (tools/testserver.py FAST_ARGON2; shipped default is t=3,
m=64 MiB), and the limiter's delays scaled down by ``--delay-scale`` (default
1/4: 0.25 s doubling to 3.75 s instead of 1 s to 15 s). Thresholds and windows
are the shipped defaults otherwise (`--spray-threshold` to change that one).
Exit status 1 when a wrong guess was accepted or a device was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "src"))

import testserver  # noqa: E402

from mailbag.auth import app_passwords  # noqa: E402
from mailbag.auth.passwords import PasswordHasher  # noqa: E402
from mailbag.config import Argon2Params  # noqa: E402
from mailbag.store.sqlite import SqliteStore  # noqa: E402

COMMON = [
    "123456", "password", "123456789", "qwerty", "letmein", "welcome", "iloveyou",
    "admin", "monkey", "dragon", "Summer2024!", "football", "baseball", "master",
    "sunshine", "princess", "shadow", "trustno1", "Password1", "Winter2025!",
    "abc123", "passw0rd", "zaq12wsx", "qazwsx", "starwars",
]
WEAK_PASSWORD = "Summer2024!"


@dataclass
class Tally:
    accepted_real: int = 0          # a weak account's real password
    accepted_wrong: int = 0         # must stay 0
    refused: int = 0
    not_attempted: int = 0          # the time bound ran out first
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list)


@dataclass
class Legit:
    kind: str                       # "password" or "device"
    ok: int = 0
    refused: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def quote(s: str) -> bytes:
    return b'"' + s.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


class Client:
    """One IMAP connection from a chosen source address."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.n = 0

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.source, 0)
        )
        greeting = await self.reader.readline()
        if not greeting.startswith(b"* OK"):
            raise ConnectionError(f"greeting {greeting!r}")

    async def command(self, line: bytes) -> bytes:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        self.n += 1
        tag = b"x%d" % self.n
        self.writer.write(tag + b" " + line + b"\r\n")
        await self.writer.drain()
        while True:
            reply = await self.reader.readline()
            if not reply:
                self.close()
                raise ConnectionError("closed")
            if reply.startswith(tag + b" "):
                return reply[len(tag) + 1:]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def attacker(port: int, source: str, guesses: list[tuple[str, str]],
                   real: dict[str, str], tally: Tally, deadline: float) -> None:
    c = Client(port, source)
    for i, (user, password) in enumerate(guesses):
        if time.monotonic() > deadline:
            tally.not_attempted += len(guesses) - i
            break
        t0 = time.monotonic()
        for _ in range(3):
            try:
                reply = await asyncio.wait_for(
                    c.command(b"LOGIN " + quote(user) + b" " + quote(password)),
                    max(1.0, deadline - time.monotonic()),
                )
                break
            except (ConnectionError, OSError):
                tally.reconnects += 1
                c.close()
            except TimeoutError:
                reply = b""
                break
        else:
            reply = b""
        if not reply:
            tally.not_attempted += 1
            c.close()
            continue
        tally.latencies.append(time.monotonic() - t0)
        if reply.startswith(b"OK"):
            if real.get(user) == password:
                tally.accepted_real += 1
            else:
                tally.accepted_wrong += 1
            # Logged in: a new connection for the next guess.
            c.close()
        else:
            tally.refused += 1
    c.close()


async def legitimate(port: int, source: str, user: str, password: str, stats: Legit,
                     stop: asyncio.Event, pause: float) -> None:
    while not stop.is_set():
        c = Client(port, source)
        t0 = time.monotonic()
        try:
            reply = await asyncio.wait_for(
                c.command(b"LOGIN " + quote(user) + b" " + quote(password)), 120)
            if reply.startswith(b"OK"):
                stats.ok += 1
                stats.latencies.append(time.monotonic() - t0)
                await c.command(b"SELECT INBOX")
                await c.command(b"LOGOUT")
            else:
                stats.refused += 1
        except (ConnectionError, OSError, TimeoutError) as e:
            stats.errors += 1
            kind = f"{type(e).__name__}: {e}"[:80]
            stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
        finally:
            c.close()
        try:
            await asyncio.wait_for(stop.wait(), pause)
        except TimeoutError:
            pass


async def make_accounts(data_dir: Path, n: int, weak: int, devices: int,
                        seed: int) -> tuple[dict[str, str], dict[str, str]]:
    """(main passwords, app passwords) by account name, written straight into
    the store (1,000 `mailbag user add` runs would take minutes)."""
    rng = random.Random(seed)
    hasher = PasswordHasher(Argon2Params(**testserver.FAST_ARGON2), workers=1)
    store = SqliteStore(data_dir)
    await store.open()
    mains: dict[str, str] = {}
    apps: dict[str, str] = {}
    weak_names = set(rng.sample(range(n), weak))
    try:
        for i in range(n):
            name = f"user{i:04d}"
            pw = WEAK_PASSWORD if i in weak_names else f"pw-{rng.getrandbits(64):016x}"
            account = await store.create_account(name, hasher.hash(pw.encode()))
            mains[name] = pw
            if i < devices:
                secret = app_passwords.generate()
                canonical = app_passwords.normalize(secret.encode())
                assert canonical is not None
                await store.add_app_password(account.id, "phone",
                                             app_passwords.selector(canonical),
                                             hasher.hash(canonical.encode()))
                apps[name] = secret
    finally:
        await store.close()
    return mains, apps


def summarize(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    xs = sorted(xs)
    return {"n": len(xs), "median_s": round(statistics.median(xs), 3),
            "p95_s": round(xs[int(0.95 * (len(xs) - 1))], 3), "max_s": round(xs[-1], 3)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="mailbag-attack-"))
    scale = args.delay_scale
    srv = testserver.TestServer(tmp)
    srv.extra_config = (
        "[limits]\nmax_connections = 4000\nmax_connections_per_ip = 50\n"
        "[ratelimit]\n"
        f"base_delay = {1.0 * scale}\nmax_delay = {15.0 * scale}\n"
        f"spray_threshold = {args.spray_threshold}\n"
    )
    srv.write_config()
    devices = args.devices + args.devices_in_attack_nets
    mains, apps = await make_accounts(srv.data_dir, args.accounts, args.weak,
                                      args.password_users + devices, args.seed)
    srv.start()
    assert srv.proc is not None
    pid = srv.proc.pid
    try:
        rss_before = rss_kib(pid)
        names = sorted(mains)
        passwords = COMMON[: max(1, args.guesses // args.accounts)]
        if WEAK_PASSWORD not in passwords:
            passwords[-1] = WEAK_PASSWORD
        # Password-major order, spread over the sources so that no address
        # tries one account twice.
        per_net = max(1, args.sources // args.networks)
        sources = [f"127.{10 + k // per_net}.0.{1 + k % per_net}" for k in range(args.sources)]
        work: list[list[tuple[str, str]]] = [[] for _ in sources]
        count = 0
        for p_i, pw in enumerate(passwords):
            for a_i, name in enumerate(names):
                if count >= args.guesses:
                    break
                work[(a_i + p_i * 37) % len(sources)].append((name, pw))
                count += 1

        tally = Tally()
        stop = asyncio.Event()
        legit: list[tuple[Legit, asyncio.Future[None]]] = []
        # Legitimate users: accounts 0.. with main passwords, the next with
        # app passwords; their own addresses, except the last few devices,
        # which sit inside attacker networks.
        users = names[: args.password_users]
        device_users = names[args.password_users: args.password_users + devices]
        for i, name in enumerate(users):
            st = Legit("password")
            legit.append((st, asyncio.ensure_future(legitimate(
                srv.imap_port, f"127.200.0.{1 + i}", name, mains[name], st, stop, args.pause))))
        for i, name in enumerate(device_users):
            inside = i >= args.devices
            source = (f"127.{10 + i % args.networks}.0.250" if inside
                      else f"127.201.0.{1 + i}")
            st = Legit("device-in-attack-net" if inside else "device")
            legit.append((st, asyncio.ensure_future(legitimate(
                srv.imap_port, source, name, apps[name], st, stop, args.pause))))

        peak = rss_before
        t0 = time.monotonic()
        deadline = t0 + args.max_seconds
        attack = asyncio.gather(*(attacker(srv.imap_port, src, w, mains, tally, deadline)
                                  for src, w in zip(sources, work, strict=True)))
        while not attack.done():
            peak = max(peak, rss_kib(pid))
            await asyncio.wait([attack], timeout=0.5)
        elapsed = time.monotonic() - t0
        stop.set()
        await asyncio.gather(*(f for _, f in legit))
        rss_after = rss_kib(pid)
        log = srv.log_text()
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    by_kind: dict[str, Legit] = {}
    for st, _ in legit:
        agg = by_kind.setdefault(st.kind, Legit(st.kind))
        agg.ok += st.ok
        agg.refused += st.refused
        agg.errors += st.errors
        agg.latencies += st.latencies
        for kind, n in st.error_kinds.items():
            agg.error_kinds[kind] = agg.error_kinds.get(kind, 0) + n
    weak_sprayed = sum(1 for n in names if mains[n] == WEAK_PASSWORD)
    return {
        "config": {"guesses": count, "accounts": args.accounts, "sources": len(sources),
                   "networks": args.networks, "passwords": len(passwords),
                   "weak_accounts": weak_sprayed, "delay_scale": scale,
                   "spray_threshold": args.spray_threshold,
                   "argon2": testserver.FAST_ARGON2, "max_seconds": args.max_seconds},
        "attack": {"seconds": round(elapsed, 1), "accepted_real_password": tally.accepted_real,
                   "accepted_wrong_password": tally.accepted_wrong, "refused": tally.refused,
                   "not_attempted_in_time": tally.not_attempted, "reconnects": tally.reconnects,
                   "latency": summarize(tally.latencies)},
        "legitimate": {k: {"ok": v.ok, "refused": v.refused, "errors": v.errors,
                           "error_kinds": v.error_kinds,
                           "latency": summarize(v.latencies)} for k, v in by_kind.items()},
        "server": {"rss_kib_before": rss_before, "rss_kib_peak": peak,
                   "rss_kib_after": rss_after},
        "log": {"auth-failed": log.count(" auth-failed "),
                "auth-blocked": log.count(" auth-blocked "),
                "auth-spray-on": log.count(" auth-spray-on "),
                "preauth-timeout": log.count(" preauth-timeout ")},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guesses", type=int, default=20_000)
    ap.add_argument("--accounts", type=int, default=1_000)
    ap.add_argument("--sources", type=int, default=1_000, help="attacker addresses")
    ap.add_argument("--networks", type=int, default=200, help="/24s they are spread over")
    ap.add_argument("--weak", type=int, default=5, help="accounts whose password is sprayed")
    ap.add_argument("--password-users", type=int, default=20)
    ap.add_argument("--devices", type=int, default=20, help="app-password devices")
    ap.add_argument("--devices-in-attack-nets", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between legit logins")
    ap.add_argument("--delay-scale", type=float, default=0.25)
    ap.add_argument("--spray-threshold", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    if args.sources > 250 * 200 or args.networks > 200:
        ap.error("at most 200 networks of 250 addresses")
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    attack = result["attack"]
    legit = result["legitimate"]
    assert isinstance(attack, dict) and isinstance(legit, dict)
    bad = attack["accepted_wrong_password"] > 0 or any(
        v["refused"] > 0 for k, v in legit.items() if k.startswith("device"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
