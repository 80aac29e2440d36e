"""FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2; RFC 3501 RFC822* items;
RFC 3516 BINARY; RFC 7162 §3.1.4-3.1.5 MODSEQ and CHANGEDSINCE, §3.2.6
VANISHED; RFC 8970 PREVIEW; RFC 8514 SAVEDATE; RFC 8474 EMAILID/THREADID).

Everything but body sections comes from the facts stored at ingest; the blob
is read only when a body section is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailbag.imap.registry import SELECTED, CommandError, Reply, bad, command
from mailbag.imap.search import email_id
from mailbag.imap.selected import SelectedMailbox, Spans, flags_str
from mailbag.mime.message import ParsedMessage
from mailbag.mime.parse import parse_message
from mailbag.mime.sections import UnknownEncoding, binary_section, section_bytes
from mailbag.mime.unbinary import without_nul
from mailbag.store.api import MessageRecord
from mailbag.wire.commands import Fetch, FetchAtt, Section
from mailbag.wire.dates import format_internaldate
from mailbag.wire.values import Literal, quoted_or_literal

if TYPE_CHECKING:
    from mailbag.imap.session import Session

BATCH = 200
# UID/FLAGS/MODSEQ only: nothing to load per batch. Small enough that the
# client starts parsing while the rest is being formatted.
VIEW_BATCH = 1000
SETS_SEEN = {"RFC822", "RFC822.TEXT"}


def section_label(section: Section) -> bytes:
    parts = [".".join(str(p) for p in section.part)] if section.part else []
    if section.text:
        text: str = section.text
        if section.fields:
            text += " (" + " ".join(f.decode("ascii", "replace") for f in section.fields) + ")"
        parts.append(text)
    return ".".join(parts).encode()


def _needs_body(att: FetchAtt) -> bool:
    return att.name in ("BODY[]", "BINARY[]", "BINARY.SIZE", "RFC822", "RFC822.HEADER",
                        "RFC822.TEXT")


def _sets_seen(att: FetchAtt) -> bool:
    if att.name in ("BODY[]", "BINARY[]"):
        return not att.peek
    return att.name in SETS_SEEN


def _slice(data: bytes, att: FetchAtt) -> tuple[bytes, bytes]:
    if att.partial is None:
        return data, b""
    start = att.partial.start
    end = None if att.partial.length is None else start + att.partial.length
    return data[start:end], b"<%d>" % start


VIEW_ONLY = frozenset({"UID", "FLAGS", "MODSEQ"})
RECENT = frozenset({"\\Recent"})
# Items answered from the record's columns, without decoding its facts.
FROM_RECORD = frozenset({"INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY",
                         "SAVEDATE", "EMAILID", "THREADID"})


def render_view_item(sel: SelectedMailbox, att: FetchAtt, uid: int, pos: int) -> bytes:
    """Items answered from the mailbox index alone; *pos* is the message's
    place in it."""
    if att.name == "UID":
        return b"UID %d" % uid
    if att.name == "MODSEQ":
        return b"MODSEQ (%d)" % sel.index.modseqs[pos]
    return sel.flags_item(uid, sel.index.flags[pos])


def _view_lines(sel: SelectedMailbox, batch: Sequence[tuple[int, int]],
                positions: Sequence[int | None], items: Sequence[FetchAtt]) -> list[bytes]:
    """FETCH responses made of UID/FLAGS/MODSEQ only: the index alone answers,
    and `UID FETCH 1:* (FLAGS)` (every client's resync) has its own loop."""
    out: list[bytes] = []
    if [a.name for a in items] == ["UID", "FLAGS"]:
        flags, recent = sel.index.flags, sel.recent
        # str formatting and one encode per batch: several times faster per
        # line than bytes %-formatting, and this loop runs once per message.
        text = "".join([
            f"* {seq} FETCH (UID {uid} FLAGS ({flags_str(flags[pos] | RECENT if uid in recent else flags[pos])}))\r\n"
            for (seq, uid), pos in zip(batch, positions, strict=True) if pos is not None
        ])
        return [text.encode("ascii", "replace")]
    for (seq, uid), pos in zip(batch, positions, strict=True):
        if pos is not None:
            out.append(b"* %d FETCH (%b)\r\n" % (seq, b" ".join(
                [render_view_item(sel, att, uid, pos) for att in items])))
    return out


async def _fetch_view_spans(s: Session, sel: SelectedMailbox, spans: list[tuple[int, int]],
                            items: Sequence[FetchAtt]) -> None:
    """UID/FLAGS/MODSEQ for the messages at *spans* of an aligned view: the
    sequence number is the position plus one, the rest is in the index."""
    idx = sel.index
    names = [a.name for a in items]
    for lo, hi in spans:
        for start in range(lo, hi, VIEW_BATCH):
            end = min(hi, start + VIEW_BATCH)
            seqs = range(start + 1, end + 1)
            uids, flags = sel.uids[start:end], idx.flags[start:end]
            if sel.recent:
                flags = [f | RECENT if u in sel.recent else f for u, f in zip(uids, flags, strict=True)]
            text = {f: flags_str(f) for f in set(flags)}
            if names == ["UID", "FLAGS"]:
                out = [f"* {q} FETCH (UID {u} FLAGS ({text[f]}))\r\n"
                       for q, u, f in zip(seqs, uids, flags, strict=True)]
            else:
                modseqs = idx.modseqs[start:end]
                out = []
                for q, u, f, m in zip(seqs, uids, flags, modseqs, strict=True):
                    parts = [f"UID {u}" if n == "UID" else f"MODSEQ ({m})" if n == "MODSEQ"
                             else f"FLAGS ({text[f]})" for n in names]
                    out.append(f"* {q} FETCH ({' '.join(parts)})\r\n")
            s.send("".join(out).encode("ascii", "replace"))
            await s.maybe_flush()


def _positions(sel: SelectedMailbox, pairs: Sequence[tuple[int, int]]) -> list[int | None]:
    if sel.aligned():
        return [seq - 1 for seq, _ in pairs]
    return [sel.index.position(uid) for _, uid in pairs]


def render_item(
    s: Session, att: FetchAtt, rec: MessageRecord, facts: ParsedMessage | None,
    raw: bytes | None
) -> list[bytes]:
    name = att.name
    if name == "INTERNALDATE":
        return [b"INTERNALDATE " + format_internaldate(rec.internaldate)]
    if name == "RFC822.SIZE":
        return [b"RFC822.SIZE %d" % rec.size]
    if name == "ENVELOPE":
        return [b"ENVELOPE " + rec.envelope]
    if name == "BODYSTRUCTURE":
        return [b"BODYSTRUCTURE " + rec.bodystructure]
    if name == "BODY":
        return [b"BODY " + rec.body]
    if name == "SAVEDATE":
        return [b"SAVEDATE " + format_internaldate(rec.savedate)]
    if name == "EMAILID":
        return [b"EMAILID (" + email_id(rec.blob_id).encode() + b")"]
    if name == "THREADID":
        return [b"THREADID NIL"]
    assert facts is not None, "FROM_RECORD must list every item answered above"
    if name == "PREVIEW":
        return [b"PREVIEW " + quoted_or_literal(facts.preview.encode("utf-8"))]
    assert raw is not None
    if name.startswith(("RFC822", "BODY[")):
        return _render_text_item(att, *_nul_free(raw, facts))
    return _render_binary_item(att, raw, facts)


def _nul_free(raw: bytes, facts: ParsedMessage) -> tuple[bytes, ParsedMessage]:
    """The message as BODY[] may show it: literals cannot carry NUL."""
    if b"\x00" not in raw:
        return raw, facts
    safe = without_nul(raw, facts)
    return safe, parse_message(safe)


def _render_text_item(att: FetchAtt, raw: bytes, facts: ParsedMessage) -> list[bytes]:
    name = att.name
    if name == "RFC822":
        return [b"RFC822 {%d}\r\n" % len(raw), raw]
    if name == "RFC822.HEADER":
        header = section_bytes(raw, facts, Section(text="HEADER")) or b""
        return [b"RFC822.HEADER {%d}\r\n" % len(header), header]
    if name == "RFC822.TEXT":
        text = section_bytes(raw, facts, Section(text="TEXT")) or b""
        return [b"RFC822.TEXT {%d}\r\n" % len(text), text]
    section = att.section or Section()
    label = section_label(section)
    if name == "BODY[]":
        data = section_bytes(raw, facts, section)
        if data is None:
            # A part that does not exist (RFC 9051 leaves it open; NIL as Gmail does).
            return [b"BODY[" + label + b"] NIL"]
        data, origin = _slice(data, att)
        return [b"BODY[" + label + b"]" + origin + b" {%d}\r\n" % len(data), data]
    raise AssertionError(name)


def _render_binary_item(att: FetchAtt, raw: bytes, facts: ParsedMessage) -> list[bytes]:
    name = att.name
    section = att.section or Section()
    label = section_label(section)
    try:
        decoded = binary_section(raw, facts, section.part)
    except UnknownEncoding:
        raise CommandError("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
    if name == "BINARY.SIZE":
        # The grammar requires a number, so a missing part has size 0.
        size = len(decoded) if decoded is not None else 0
        return [b"BINARY.SIZE[" + label + b"] %d" % size]
    if decoded is None:
        return [b"BINARY[" + label + b"] NIL"]
    decoded, origin = _slice(decoded, att)
    lit = Literal(decoded, binary=b"\x00" in decoded)
    prefix = b"~" if lit.binary else b""
    return [b"BINARY[" + label + b"]" + origin + b" " + prefix + b"{%d}\r\n" % len(decoded),
            decoded]


async def fetch_messages(
    s: Session, seqs_uids: Sequence[tuple[int, int]], items: Sequence[FetchAtt]
) -> None:
    sel = s.require_selected()
    need_body = any(_needs_body(a) for a in items)
    need_record = need_body or any(a.name not in VIEW_ONLY for a in items)
    need_facts = any(a.name not in VIEW_ONLY and a.name not in FROM_RECORD for a in items)
    step = BATCH if need_record else VIEW_BATCH
    for start in range(0, len(seqs_uids), step):
        batch = seqs_uids[start:start + step]
        positions = _positions(sel, batch)
        records: dict[int, MessageRecord] = {}
        if need_record:
            for r in await s.store.fetch_records(sel.info.id, [u for _, u in batch],
                                                 facts=need_facts):
                records[r.uid] = r
        if not need_record:
            s.send(b"".join(_view_lines(sel, batch, positions, items)))
            await s.maybe_flush()
            continue
        lines: list[bytes] = []
        for (seq, uid), pos in zip(batch, positions, strict=True):
            rec = records.get(uid)
            if pos is None or rec is None:
                continue  # expunged by another session meanwhile
            facts = ParsedMessage.from_bytes(rec.facts) if need_facts else None
            raw = await s.store.read_blob(rec.blob_id) if need_body else None
            chunks: list[bytes] = [b"* %d FETCH (" % seq]
            for i, att in enumerate(items):
                if i:
                    chunks.append(b" ")
                if att.name in VIEW_ONLY:
                    chunks.append(render_view_item(sel, att, uid, pos))
                else:
                    chunks.extend(render_item(s, att, rec, facts, raw))
            chunks.append(b")\r\n")
            lines.append(b"".join(chunks))
        s.send(b"".join(lines))
        await s.maybe_flush()


@command(Fetch, SELECTED, forbids_expunge=lambda cmd: not cmd.uid)
async def fetch(s: Session, cmd: Fetch) -> Reply:
    sel = s.require_selected()
    if not cmd.uid and sel.seq_out_of_range(cmd.set):
        raise bad("Invalid sequence number")
    items = list(cmd.items)
    names = {a.name for a in items}
    mods = cmd.modifiers
    if mods.vanished and not s.qresync:
        raise bad("The VANISHED modifier needs ENABLE QRESYNC first")
    if mods.changedsince is not None or s.condstore:
        if mods.changedsince is not None:
            s.enabled.add("CONDSTORE")
        if "MODSEQ" not in names and (mods.changedsince is not None or "FLAGS" in names):
            items.append(FetchAtt("MODSEQ"))
    # Under QRESYNC every FETCH response carries the UID (RFC 7162 §3.2.4).
    if (cmd.uid or s.qresync) and "UID" not in names:
        items.insert(0, FetchAtt("UID"))
    if (mods.changedsince is None and not cmd.set.saved and sel.aligned()
            and all(a.name in VIEW_ONLY for a in items)):
        # Every client's resync (`UID FETCH 1:* (FLAGS)`): straight from the
        # index, without a (seq, uid) pair per message.
        await _fetch_view_spans(s, sel, sel.spans(cmd.set, cmd.uid), items)
        return Reply(text="FETCH completed")
    if mods.changedsince is not None:
        # The store finds what changed by its modseq index: the cost follows
        # the changes, not the size of the set (RFC 7162 §3.1.4, §3.2.6).
        changes = await s.store.changes_since(sel.info.id, mods.changedsince)
        if mods.vanished:
            star = max(changes.uidnext - 1, sel.uids[-1] if sel.uids else 0)
            line = sel.vanished_earlier(changes.expunged, Spans(cmd.set, star))
            if line is not None:
                s.send(line)
        pairs = sel.changed_pairs(cmd.set, cmd.uid, (m.uid for m in changes.changed),
                                  mods.changedsince)
    else:
        pairs = sel.resolve_pairs(cmd.set, cmd.uid)
    uids = [u for _, u in pairs]

    if not sel.readonly and any(_sets_seen(a) for a in items):
        unseen = [u for u in uids
                  if (f := sel.flags_of(u)) is not None and "\\Seen" not in f]
        if unseen:
            result = await s.store.store_flags(sel.info.id, unseen, "add",
                                               frozenset({"\\Seen"}))
            await s.own_changes(result.changed)
            if "FLAGS" not in names:
                items.append(FetchAtt("FLAGS"))
    await fetch_messages(s, pairs, items)
    return Reply(text="FETCH completed")
