#!/usr/bin/env python3
"""SEARCH on a big mailbox: mailbag against Dovecot on this machine.

Loads the same N messages (default 100,000) into a throwaway mailbag and a
throwaway Dovecot, then times SEARCH BODY / TEXT / SUBJECT / FROM with a
frequent, a rare and a non-ASCII needle (RFC 9051 §6.4.4 substring,
case-insensitive), and a QRESYNC resync (RFC 7162 §3.2.5: SELECT ... (QRESYNC
(uidvalidity modseq)) after 1 % of the messages changed).

    .venv/bin/python bench/search.py --messages 100000 --json /tmp/search.json

Loading is not what this measures, so neither server is filled over IMAP:
mailbag's INBOX is filled through the store API (the same ingest path APPEND
uses, in big batches) before the server starts, and Dovecot's as a maildir
written file by file (Dovecot indexes it on the first, untimed, SELECT).
SORT and THREAD rows (RFC 5256, 5957, 5267; --only sort runs just those) time
what a webmail client sends on every page view. Dovecot runs as shipped: no
FTS plugin, so its SEARCH BODY reads every message. Each figure is the median of R runs after one untimed warm-up run on
both servers (Dovecot caches header fields it was asked for; that is its
steady state). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import quopri
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "src"))

from run import (  # noqa: E402
    PASSWORD,
    USER,
    Conn,
    Dovecot,
    Mailbag,
    build_corpus,
    log,
    median,
)

# --------------------------------------------------------------------------
# corpus: the shared benchmark corpus plus non-ASCII messages

# (subject, body, charset, transfer encoding, html) templates; the subject
# goes out RFC 2047-encoded, the body in the charset and encoding given.
_INTL: list[tuple[str, str, str, str, bool]] = [
    ("ประชุมทีม สัปดาห์หน้า",
     "สวัสดีครับ การประชุมทีมย้ายไปวันพฤหัสบดี กรุณายืนยันการเข้าร่วม\n",
     "utf-8", "base64", False),
    ("会议纪要：北京办公室",
     "各位同事：\n本周五下午三点在北京办公室召开季度会议，请准时参加。\n",
     "gb18030", "base64", False),
    ("Réunion au Café Müller",
     "Bonjour, la CRÈME BRÛLÉE était excellente. Straße, Œuvre, naïve façade.\n",
     "iso-8859-15", "quoted-printable", False),
    ("Menü für Freitag",
     "<html><body><p>Wir essen <b>Crème brûlée</b> im Caf&eacute; "
     "M&uuml;ller.</p><p>ขอบคุณ 谢谢</p></body></html>\n",
     "utf-8", "quoted-printable", True),
]
INTL_EVERY = 50        # one message in 50 is one of the above


def _intl_message(i: int) -> bytes:
    subject, body, charset, cte, html = _INTL[i % len(_INTL)]
    words = base64.b64encode(subject.encode("utf-8")).decode()
    # A number unique to this message gives the "rare" needles one hit.
    data = (body + f"Ticket T{i:06d}\n").encode(charset)
    if cte == "base64":
        payload = base64.encodebytes(data)
    else:
        payload = quopri.encodestring(data)
    head = (
        f"From: =?utf-8?b?{base64.b64encode('Søren Ærø'.encode()).decode()}?="
        f" <soren{i % 7}@example.dk>\r\n"
        "To: Team <team@example.org>\r\n"
        f"Subject: =?utf-8?b?{words}?=\r\n"
        f"Message-ID: <intl-{i}@bench.example>\r\n"
        "Date: Thu, 01 Feb 2024 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/{'html' if html else 'plain'}; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode()
    return head + payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def corpus(tmp: Path, n: int) -> list[bytes]:
    msgs = build_corpus(tmp, n)
    for i in range(INTL_EVERY // 2, n, INTL_EVERY):
        msgs[i] = b"X-Bench-Seq: %d\r\n" % i + _intl_message(i // INTL_EVERY)
    return msgs


# --------------------------------------------------------------------------
# loading

MTIME_BASE = 1_700_000_000      # message i arrived at MTIME_BASE + i, in both servers

async def _fill_store(data_dir: Path, msgs: list[bytes], batch: int) -> None:
    from mailbag.store.api import AppendItem
    from mailbag.store.sqlite.store import SqliteStore

    async with SqliteStore(data_dir) as store:
        account = await store.get_account(USER)
        assert account is not None, "user must exist before loading"
        box = await store.get_mailbox(account.id, "INBOX")
        assert box is not None
        t0 = time.perf_counter()
        for k in range(0, len(msgs), batch):
            # The internal dates Dovecot takes from the maildir files' mtimes
            # (load_dovecot), so ARRIVAL and DATE-without-Date answers compare.
            await store.append(box.id, [
                AppendItem(m, internaldate=datetime.fromtimestamp(MTIME_BASE + k + j, UTC))
                for j, m in enumerate(msgs[k:k + batch])])
            if k and k % 20000 == 0:
                rate = k / (time.perf_counter() - t0)
                log(f"    mailbag: {k} loaded ({rate:.0f} msg/s)")


def load_mailbag(srv: Mailbag, msgs: list[bytes]) -> None:
    """Fill INBOX through the store API while the server is not running."""
    srv.srv.write_config()
    srv.srv.add_user(USER, PASSWORD)
    asyncio.run(_fill_store(srv.srv.data_dir, msgs, 500))


def load_dovecot(srv: Dovecot, msgs: list[bytes]) -> None:
    """Write INBOX as a maildir (Dovecot's mail_location), one file per
    message, in order, with unique names; Dovecot assigns UIDs in that order
    when it first sees the directory (sorted by name)."""
    box = srv.dir / "mail" / USER
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    base = MTIME_BASE
    host = socket.gethostname()
    for i, m in enumerate(msgs):
        name = f"{base + i}.M{i:07d}P1.{host},S={len(m)}:2,"
        path = box / "cur" / name
        path.write_bytes(m)
        os.utime(path, (base + i, base + i))
    for dirpath, _dirs, files in os.walk(srv.dir / "mail"):
        shutil.chown(dirpath, "dovecot", "dovecot")
        for f in files:
            shutil.chown(os.path.join(dirpath, f), "dovecot", "dovecot")


# --------------------------------------------------------------------------
# the figures

def _utf8(key: str, needle: str) -> str:
    """A SEARCH with a non-ASCII needle, sent as a LITERAL+ literal."""
    return f"SEARCH CHARSET UTF-8 {key} {{{len(needle.encode())}+}}\r\n{needle}"


# (label, command): a frequent, a rare and a non-ASCII needle per search key.
SEARCHES: list[tuple[str, str]] = [
    ("BODY frequent", 'SEARCH BODY "message"'),
    ("BODY rare", 'SEARCH BODY "t000777"'),
    ("BODY non-ASCII (Thai)", _utf8("BODY", "ประชุม")),
    ("BODY non-ASCII (accents, other case)", _utf8("BODY", "crème BRÛLÉE")),
    ("TEXT frequent", 'SEARCH TEXT "example"'),
    ("TEXT rare", 'SEARCH TEXT "x-bench-seq: 77777"'),
    ("TEXT non-ASCII (Chinese)", _utf8("TEXT", "北京办公室")),
    ("SUBJECT frequent", 'SEARCH SUBJECT "test"'),
    ("SUBJECT rare", 'SEARCH SUBJECT "report 3"'),
    ("SUBJECT non-ASCII (Thai)", _utf8("SUBJECT", "สัปดาห์")),
    ("FROM frequent", 'SEARCH FROM "warsaw"'),
    ("FROM rare", 'SEARCH FROM "alice@example.org"'),
    ("FROM non-ASCII (other case)", _utf8("FROM", "SØREN")),
    ("BODY 2 chars (Chinese)", _utf8("BODY", "北京")),
]


# SORT (RFC 5256, RFC 5957 DISPLAYFROM, RFC 5267 ESORT) and THREAD rows:
# what a webmail client sends on every page view of a big INBOX.
SORTS: list[tuple[str, str]] = [
    ("UID SORT (DATE) UTF-8 ALL", "UID SORT (DATE) UTF-8 ALL"),
    ("UID SORT (REVERSE ARRIVAL) UTF-8 ALL", "UID SORT (REVERSE ARRIVAL) UTF-8 ALL"),
    ("UID SORT (SUBJECT) UTF-8 ALL", "UID SORT (SUBJECT) UTF-8 ALL"),
    ("UID SORT (FROM) UTF-8 ALL", "UID SORT (FROM) UTF-8 ALL"),
    ("UID SORT (DISPLAYFROM) UTF-8 ALL", "UID SORT (DISPLAYFROM) UTF-8 ALL"),
    ("UID SORT (REVERSE SIZE) UTF-8 ALL", "UID SORT (REVERSE SIZE) UTF-8 ALL"),
    ("UID SORT (DATE) UTF-8 UNSEEN", "UID SORT (DATE) UTF-8 UNSEEN"),
    ("UID SORT RETURN (MIN MAX COUNT) (DATE)",
     "UID SORT RETURN (MIN MAX COUNT) (REVERSE DATE) UTF-8 ALL"),
    ("UID THREAD REFERENCES UTF-8 ALL", "UID THREAD REFERENCES UTF-8 ALL"),
    ("UID THREAD ORDEREDSUBJECT UTF-8 ALL", "UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
]


def answer_of(untagged: list[bytes]) -> tuple[int, str]:
    """(numbers in the answer, a digest of it): SEARCH/SORT/ESEARCH/THREAD.
    The digest lets the report say whether both servers gave the same order."""
    for u in untagged:
        for head in (b"* SEARCH", b"* SORT", b"* THREAD", b"* ESEARCH"):
            if u.startswith(head):
                body = u[len(head):].strip()
                if head == b"* ESEARCH":          # drop the (TAG "...") correlator
                    body = body.split(b")", 1)[-1].strip()
                count = len(re.findall(rb"\d+", body)) if head == b"* THREAD" \
                    else len(body.split())
                return count, hashlib.sha1(body).hexdigest()[:10]
    return -1, ""


async def _timed(c: Conn, command: bytes, repeat: int) -> tuple[list[float], int, str]:
    await c.ok(command, keep=False)            # warm-up, untimed
    runs: list[float] = []
    hits, digest = -1, ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        _n, kept = await c.ok(command, keep=True)
        runs.append((time.perf_counter() - t0) * 1000)
        hits, digest = answer_of(kept)
    return runs, hits, digest


async def search_figures(port: int, repeat: int, out: dict[str, Any],
                         searches: list[tuple[str, str]]) -> None:
    c = await Conn.login(port)
    t0 = time.perf_counter()
    await c.ok(b"SELECT INBOX")
    out["first SELECT (ms)"] = {"value": (time.perf_counter() - t0) * 1000}
    for label, command in searches:
        runs, hits, digest = await _timed(c, command.encode(), repeat)
        out[label] = {"value": median(runs), "runs": runs, "hits": hits, "digest": digest}
        log(f"    {label}: {median(runs):.1f} ms, {hits} hits")
    await c.logout()


async def first_sort_figure(port: int, out: dict[str, Any]) -> None:
    """The first SORT (SUBJECT) the server is asked after it started (and
    after an untimed SELECT), one sample: what a cold cache costs."""
    c = await Conn.login(port)
    await c.ok(b"SELECT INBOX")
    t0 = time.perf_counter()
    await c.ok(b"UID SORT (SUBJECT) UTF-8 ALL")
    out["first SORT (SUBJECT) (ms)"] = {"value": (time.perf_counter() - t0) * 1000}
    await c.logout()


async def qresync_figure(port: int, n: int, repeat: int, out: dict[str, Any]) -> None:
    """1 % of the messages changed (flags on 0.9 %, expunged 0.1 %) since a
    client last saw the mailbox; time SELECT INBOX (QRESYNC (v m)) to its OK."""
    c = await Conn.login(port)
    _n, kept = await c.ok(b"CAPABILITY", keep=True)
    if b"QRESYNC" not in b" ".join(kept):
        out["QRESYNC resync (ms)"] = {"value": None, "note": "QRESYNC not advertised"}
        await c.logout()
        return
    await c.ok(b"ENABLE QRESYNC")
    runs: list[float] = []
    for r in range(repeat):
        _n, kept = await c.ok(b"SELECT INBOX", keep=True)
        text = b" ".join(kept)
        validity = int(text.split(b"UIDVALIDITY ")[1].split(b"]")[0])
        modseq = int(text.split(b"HIGHESTMODSEQ ")[1].split(b"]")[0])
        changed = max(1, n // 100)
        step = n // changed
        flagged = [str(1 + k * step).encode() for k in range(changed)]
        dead = flagged[r::10]              # 0.1 % expunged, different ones each run
        await c.ok(b"UID STORE " + b",".join(flagged) + b" +FLAGS.SILENT (\\Flagged $Bench%d)" % r)
        await c.ok(b"UID STORE " + b",".join(dead) + b" +FLAGS.SILENT (\\Deleted)")
        await c.ok(b"UID EXPUNGE " + b",".join(dead))
        await c.ok(b"UNSELECT")
        t0 = time.perf_counter()
        count, _kept = await c.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (validity, modseq))
        runs.append((time.perf_counter() - t0) * 1000)
        log(f"    QRESYNC run {r}: {runs[-1]:.1f} ms, {count} untagged")
        await c.ok(b"UNSELECT")
    out["QRESYNC resync (ms)"] = {"value": median(runs), "runs": runs}
    await c.logout()


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


def report(results: dict[str, dict[str, Any]], n: int, keys: list[str]) -> str:
    lines = [f"\n== SEARCH/SORT/THREAD on {n} messages (median ms; ratio = dovecot / mailbag,"
             " >1 means mailbag faster; target >= 10 for SEARCH, >= 1 for SORT)",
             f"{'figure':40} {'mailbag':>9} {'dovecot':>9} {'ratio':>7}  hits"]
    mb, dc = results.get("mailbag", {}), results.get("dovecot", {})
    for key in keys:
        a, b = mb.get(key, {}).get("value"), dc.get(key, {}).get("value")
        ratio = f"{b / a:7.1f}" if a and b else "      -"
        ha, hb = mb.get(key, {}).get("hits"), dc.get(key, {}).get("hits")
        hits = "" if ha is None and hb is None else (
            f"{ha}" if ha == hb or hb is None or ha is None else f"{ha} vs {hb} DIFFER")
        da, db = mb.get(key, {}).get("digest"), dc.get(key, {}).get("digest")
        if da and db:
            hits += " same answer" if da == db else " answers differ"
        note = mb.get(key, {}).get("note") or dc.get(key, {}).get("note") or ""
        fa = "-" if a is None else f"{a:9.1f}"
        fb = "-" if b is None else f"{b:9.1f}"
        lines.append(f"{key:40} {fa:>9} {fb:>9} {ratio}  {hits} {note}".rstrip())
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--servers", default="mailbag,dovecot")
    ap.add_argument("--no-qresync", action="store_true")
    ap.add_argument("--only", choices=("all", "search", "sort"), default="all",
                    help="sort: only the SORT/THREAD rows (and first SELECT)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    args = ap.parse_args()
    if not 1 <= args.messages <= 1_000_000:
        ap.error("--messages must be 1..1000000")
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rows = ((SEARCHES if args.only != "sort" else [])
            + (SORTS if args.only != "search" else []))
    keys = [label for label, _c in rows]
    if args.only != "sort":
        keys.append("QRESYNC resync (ms)")
    if args.only != "search":
        keys.append("first SORT (SUBJECT) (ms)")
    keys.append("first SELECT (ms)")
    tmp = Path(tempfile.mkdtemp(prefix="mailbag-search-bench-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        log(f"building corpus of {args.messages} messages ...")
        msgs = corpus(tmp, args.messages)
        log(f"  {sum(map(len, msgs)) / 1e6:.1f} MB")
        for name in [s for s in args.servers.split(",") if s]:
            root = tmp / name
            root.mkdir()
            srv: Any = (Dovecot(root, "minimal") if name == "dovecot"
                        else Mailbag(root, "minimal"))
            t0 = time.perf_counter()
            log(f"loading {name} ...")
            if name == "dovecot":
                load_dovecot(srv, msgs)
                RUNNING.append(srv)
                srv.start()
            else:
                load_mailbag(srv, msgs)
                RUNNING.append(srv)
                srv.srv.start(timeout=120)
            log(f"  loaded in {time.perf_counter() - t0:.0f}s")
            res: dict[str, Any] = {}
            try:
                if args.only != "search":     # before anything else has sorted
                    asyncio.run(first_sort_figure(srv.port, res))
                asyncio.run(search_figures(srv.port, args.repeat, res, rows))
                if not args.no_qresync and args.only != "sort":
                    asyncio.run(qresync_figure(srv.port, args.messages, args.repeat, res))
            except Exception:
                log(f"{name} log tail:\n{srv.log_text()}")
                raise
            finally:
                stop_all()
                if not args.keep:
                    shutil.rmtree(root, ignore_errors=True)
            results[name] = res
        print(report(results, args.messages, keys), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"messages": args.messages, "results": results},
                                            indent=2))
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
