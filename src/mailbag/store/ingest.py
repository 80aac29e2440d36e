"""The one ingest path (DESIGN.md rule 2): parse a raw message once and
compute everything the store keeps beside its blob.

IMAP APPEND, LMTP, ``mailbag deliver`` and ``mailbag import`` all end in
``Store.append``, which runs ``prepare`` on a worker thread (parsing is CPU
work) and writes the blob before the database transaction that references it.
The server runs it in worker processes instead (store/sqlite/ingest_procs.py);
``worker_main`` below is such a process, kept here so that it imports only
mime/ and blobs.py.
"""

from __future__ import annotations

import dataclasses
import pickle
import signal
import socket
import struct
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailbag.mime.facts import dump
from mailbag.mime.parse import parse_message
from mailbag.mime.sortkeys import SortKeys
from mailbag.mime.text import field_texts, search_text
from mailbag.store.blobs import BlobStore, blob_id_of


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    raw: bytes
    blob_id: str                  # hex SHA-256 of raw
    size: int                     # RFC822.SIZE
    facts: bytes                  # facts.dump(rendered=False): without the three below
    envelope: bytes               # IMAP-rendered ENVELOPE, BODY, BODYSTRUCTURE
    body: bytes
    bodystructure: bytes
    sent_date: datetime | None
    search_headers: str           # casefolded, for case-insensitive SEARCH
    search_body: str              # casefolded
    search_fields: tuple[str, ...]  # mime.text.field_texts, casefolded
    sort_keys: SortKeys           # what SORT and THREAD order by
    inline: bytes | None = None   # compressed raw, when the store keeps it in its row


def prepare(raw: bytes) -> PreparedMessage:
    parsed = parse_message(raw)
    text = search_text(raw, parsed)
    return PreparedMessage(
        raw=raw,
        blob_id=blob_id_of(raw),
        size=len(raw),
        facts=dump(parsed, rendered=False),
        envelope=parsed.envelope,
        body=parsed.body,
        bodystructure=parsed.bodystructure,
        sent_date=parsed.sent_date,
        # Casefolded once here so SEARCH can compare with a plain substring test.
        search_headers=text.headers.casefold(),
        search_body=text.body.casefold(),
        search_fields=field_texts(parsed),
        sort_keys=SortKeys.of(parsed),
    )


# -- the worker process (protocol: store/sqlite/ingest_procs.py)

FRAME = struct.Struct(">I")
# While more requests are waiting, a worker sends its answers in groups of
# up to this many, or what it has once the oldest waited ANSWER_DELAY
# seconds: one wake-up of the event loop for the group, whose deliveries
# then reach the SQLite writer together and share a commit. Measured on
# bench/lmtp.py (BDAT, 4 connections): 0.69 -> 0.60 ms of server CPU a
# message; a DATA client's lone message is never held back.
ANSWER_BATCH = 16
ANSWER_DELAY = 0.005


def prepare_and_store(blobs: BlobStore, inline_max: int, raw: bytes) -> PreparedMessage:
    """Parse and compress ``raw``; a small message travels to the writer
    compressed and is committed in its row; a big one is made durable as a
    file first. Run by an ingest thread or an ingest worker process."""
    msg = prepare(raw)
    data = blobs.compress(raw)
    if len(data) <= inline_max:
        return dataclasses.replace(msg, inline=data)
    blobs.put(msg.blob_id, msg.raw, compressed=data)
    return msg


# The answer is PreparedMessage's fields after raw, which the server has.
ANSWER_FIELDS = tuple(f.name for f in dataclasses.fields(PreparedMessage))[1:]
if dataclasses.fields(PreparedMessage)[0].name != "raw":
    raise ImportError("the ingest worker expects PreparedMessage to start with raw")


def worker_main(argv: list[str]) -> int:
    """``BLOB_ROOT INLINE_MAX FD``: answer requests on socket FD until EOF."""
    blob_root, inline_max, fd = Path(argv[0]), int(argv[1]), int(argv[2])
    # Ctrl-C in a terminal reaches the whole process group: the server
    # decides when its workers stop (EOF on the socket).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    blobs = BlobStore(blob_root)
    sock = socket.socket(fileno=fd)
    # Requests are read in big chunks, so a burst of pipelined messages costs
    # one recv() for several of them, not two each. Answers go out as soon
    # as no whole request is waiting here (a lone DATA message is answered
    # at once); during a burst they go out together (ANSWER_BATCH).
    buf = bytearray()
    pos = 0
    outq: list[bytes] = []        # answers not sent yet
    since = 0.0                   # when the oldest of them was ready
    while True:
        if len(buf) - pos >= FRAME.size:
            need = FRAME.unpack_from(buf, pos)[0]
            if len(buf) - pos - FRAME.size >= need:
                start = pos + FRAME.size
                with memoryview(buf) as view:
                    raw = bytes(view[start:start + need])
                pos = start + need
                if pos == len(buf):
                    buf.clear()
                    pos = 0
                if not outq:
                    since = time.monotonic()
                outq.append(_answer(blobs, inline_max, raw))
                more = (len(buf) - pos >= FRAME.size
                        and len(buf) - pos - FRAME.size >= FRAME.unpack_from(buf, pos)[0])
                if (not more or len(outq) >= ANSWER_BATCH
                        or time.monotonic() - since >= ANSWER_DELAY):
                    sock.sendall(b"".join(outq))
                    outq.clear()
                continue
            want = FRAME.size + need - (len(buf) - pos)
        else:
            want = FRAME.size
        if pos:
            del buf[:pos]
            pos = 0
        got = sock.recv(min(max(want, 1 << 18), 1 << 22))
        if not got:
            return 0
        buf += got


def _answer(blobs: BlobStore, inline_max: int, raw: bytes) -> bytes:
    try:
        msg = prepare_and_store(blobs, inline_max, raw)
        # A plain tuple: unpickling a slots dataclass runs Python code
        # per field on the server's event loop.
        out = pickle.dumps(tuple(getattr(msg, f) for f in ANSWER_FIELDS), protocol=5)
    except Exception as exc:  # noqa: BLE001 - reported to the caller, who answers 451/NO
        out = pickle.dumps(f"{type(exc).__name__}: {exc}", protocol=5)
    return FRAME.pack(len(out)) + out
