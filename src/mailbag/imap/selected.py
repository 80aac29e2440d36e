"""The client's view of its selected mailbox (RFC 9051 §2.3.1.2 sequence
numbers, §5.2 mailbox size and message status updates, §7.5.1 EXPUNGE rules;
RFC 7162 §3.2.10 VANISHED).

The store speaks UIDs only. This object maps sequence numbers to UIDs for one
session, remembers what the client was last told (flags, modseq) and turns
store changes into the untagged responses the client may be sent now.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailbag.store.api import Changes, MailboxInfo, MessageMeta
from mailbag.store.index import MailboxIndex
from mailbag.wire.commands import SequenceSet

_flag_str: dict[frozenset[str], str] = {}


def flags_str(flags: frozenset[str]) -> str:
    """"\\Seen $Label" for a flag set; memoised because a mailbox has few
    distinct flag sets and FETCH FLAGS renders one per message."""
    text = _flag_str.get(flags)
    if text is None:
        if len(_flag_str) > 4096:
            _flag_str.clear()
        text = _flag_str[flags] = " ".join(sorted(flags))
    return text


def flags_text(flags: frozenset[str]) -> bytes:
    # Flags are atoms: ASCII by the grammar (RFC 9051 §9 flag-keyword).
    return flags_str(flags).encode("ascii", "replace")


@dataclass(slots=True)
class SelectedMailbox:
    info: MailboxInfo
    readonly: bool
    index: MailboxIndex                                    # shared, current state
    uids: list[int] = field(default_factory=list)           # index = seq - 1
    recent: set[int] = field(default_factory=set)
    modseq: int = 0                                        # store modseq told
    dirty: bool = False                                    # store said "changed"
    saved_search: list[int] | None = None                  # SEARCHRES $
    keywords: set[str] = field(default_factory=set)
    # Flag changes this session already reported (its own STORE), by uid and
    # modseq, so that catching up with the store does not report them twice.
    told: dict[int, int] = field(default_factory=dict)
    # Lowest UID of new arrivals this session has claimed as \Recent (RFC 3501
    # §2.3.2: only one session sees a message as recent); kept across a
    # deferred update so the claim is not lost.
    recent_from: int | None = None

    @classmethod
    def open(cls, info: MailboxInfo, readonly: bool, index: MailboxIndex) -> SelectedMailbox:
        # EXAMINE shows what is recent without taking it from the next SELECT.
        first_recent = index.first_recent if readonly else index.claim_recent()
        view = cls(info=info, readonly=readonly, index=index, uids=list(index.uids),
                   modseq=index.modseq, keywords=set(index.keywords))
        view.recent.update(view.uids[bisect_left(view.uids, first_recent):])
        return view

    # ------------------------------------------------------------ messages
    def aligned(self) -> bool:
        """True when the client's view and the shared index hold the same
        UIDs, so a sequence number minus one is a position in the index."""
        idx = self.index.uids
        mine = self.uids
        # Both lists come from one history in which new UIDs are always the
        # highest, so equal length and equal last UID mean equal lists.
        return len(idx) == len(mine) and (not mine or idx[-1] == mine[-1])

    def _position(self, uid: int) -> int | None:
        """Where *uid* is in the shared index."""
        if self.aligned():
            mine = self.uids
            i = bisect_left(mine, uid)
            return i if i < len(mine) and mine[i] == uid else None
        return self.index.position(uid)

    def flags_of(self, uid: int) -> frozenset[str] | None:
        """Current flags, None for a message expunged since the client was told."""
        i = self._position(uid)
        return None if i is None else self.index.flags[i]

    def modseq_of(self, uid: int) -> int | None:
        i = self._position(uid)
        return None if i is None else self.index.modseqs[i]

    def flags_map(self) -> dict[int, frozenset[str]]:
        """uid -> flags for every message the client knows of and that still exists."""
        idx = self.index
        if self.aligned():
            return dict(zip(idx.uids, idx.flags, strict=True))
        out: dict[int, frozenset[str]] = {}
        for u in self.uids:
            i = idx.position(u)
            if i is not None:
                out[u] = idx.flags[i]
        return out

    # ----------------------------------------------------------- numbering
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def resolve(self, seqset: SequenceSet, uid: bool) -> list[int]:
        """UIDs (ascending) addressed by a sequence set or UID set.

        For sequence numbers, numbers beyond EXISTS are ignored here; the
        caller decides whether that is an error. For UID sets, '*' is the
        highest UID present (RFC 9051 §6.4.8).
        """
        if seqset.saved:
            saved = set(self.saved_search or ())
            return [u for u in self.uids if u in saved]
        if not self.uids:
            return []
        if uid:
            star = self.uids[-1]
            out: list[int] = []
            for r in seqset.ranges:
                a, b = r.bounds(star)
                lo = bisect_left(self.uids, a)
                hi = bisect_left(self.uids, b + 1)
                out.extend(self.uids[lo:hi])
            return sorted(set(out))
        star = len(self.uids)
        seqs: set[int] = set()
        for r in seqset.ranges:
            a, b = r.bounds(star)
            seqs.update(range(max(a, 1), min(b, star) + 1))
        return [self.uids[s - 1] for s in sorted(seqs)]

    def resolve_pairs(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """(sequence number, UID) pairs addressed by a set, ascending: what
        resolve() gives, without a UID -> sequence number lookup per message."""
        if seqset.saved or not self.uids:
            return [(q, u) for u in self.resolve(seqset, uid)
                    if (q := self.seq_of(u)) is not None]
        uids = self.uids
        spans: list[tuple[int, int]] = []        # [lo, hi) positions
        if uid:
            star = uids[-1]
            for r in seqset.ranges:
                a, b = r.bounds(star)
                spans.append((bisect_left(uids, a), bisect_left(uids, b + 1)))
        else:
            star = len(uids)
            for r in seqset.ranges:
                a, b = r.bounds(star)
                spans.append((max(a, 1) - 1, min(b, star)))
        if len(spans) == 1:
            lo, hi = spans[0]
            return list(zip(range(lo + 1, hi + 1), uids[lo:hi], strict=True))
        positions = sorted({i for lo, hi in spans for i in range(lo, hi)})
        return [(i + 1, uids[i]) for i in positions]

    def seq_out_of_range(self, seqset: SequenceSet) -> bool:
        """True when a sequence set names a number above EXISTS (BAD per RFC)."""
        if seqset.saved:
            return False
        star = len(self.uids)
        for r in seqset.ranges:
            for end in (r.start, r.end):
                if end is not None and end > star:
                    return True
        return False

    # ------------------------------------------------------------ updates
    def own_changes(self, changed: Sequence[MessageMeta]) -> bool:
        """This session's flag changes, which it reports itself: keep the
        shared index current and do not report them again later. False when
        the index could not take them and must be refreshed from the store."""
        if not changed:
            return True
        self.index.apply_own(changed)
        modseq = changed[0].modseq
        for m in changed:
            self.keywords.update(f for f in m.flags if not f.startswith("\\"))
        if modseq == self.modseq + 1:
            self.modseq = modseq
        else:
            for m in changed:
                self.told[m.uid] = m.modseq
        return self.index.modseq >= modseq

    def apply(self, changes: Changes, allow_expunge: bool, condstore: bool,
              qresync: bool) -> list[bytes] | None:
        """Untagged responses for store changes, or None when they must wait
        (an expunge while EXPUNGE responses are not allowed)."""
        gone = [u for u in changes.expunged if self.seq_of(u) is not None]
        if gone and not allow_expunge:
            return None
        out: list[bytes] = []
        if gone:
            if qresync:
                out.append(b"* VANISHED " + compress_uids(gone) + b"\r\n")
                gone_set = set(gone)
                self.uids = [u for u in self.uids if u not in gone_set]
            else:
                # Highest first so that each number is still valid when sent.
                for u in sorted(gone, reverse=True):
                    seq = self.seq_of(u)
                    assert seq is not None
                    del self.uids[seq - 1]
                    out.append(b"* %d EXPUNGE\r\n" % seq)
            for u in gone:
                self.recent.discard(u)
                self.told.pop(u, None)
        fetches: list[bytes] = []
        last = self.uids[-1] if self.uids else 0
        added = False
        for m in changes.changed:
            if m.uid > last:
                self.uids.append(m.uid)
                if self.recent_from is not None and m.uid >= self.recent_from:
                    self.recent.add(m.uid)
                last = m.uid
                added = True
                self.keywords.update(f for f in m.flags if not f.startswith("\\"))
                continue
            if self.told.get(m.uid, 0) >= m.modseq:
                continue
            seq = self.seq_of(m.uid)
            if seq is None:
                continue
            self.keywords.update(f for f in m.flags if not f.startswith("\\"))
            fetches.append(self.fetch_flags_line(seq, m.uid, m.flags, m.modseq, condstore,
                                                 uid_item=qresync))
        if added:
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        out.extend(fetches)
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.dirty = False
        self.recent_from = None
        if self.told:
            self.told = {u: ms for u, ms in self.told.items() if ms > self.modseq}
        return out

    def has_new(self, changes: Changes) -> bool:
        last = self.uids[-1] if self.uids else 0
        return any(m.uid > last for m in changes.changed)

    def flags_item(self, uid: int, flags: frozenset[str]) -> bytes:
        if uid in self.recent:
            flags = flags | {"\\Recent"}
        return b"FLAGS (" + flags_text(flags) + b")"

    def fetch_flags_line(self, seq: int, uid: int, flags: frozenset[str], modseq: int,
                         condstore: bool, uid_item: bool) -> bytes:
        parts = [self.flags_item(uid, flags)]
        if uid_item:
            parts.insert(0, b"UID %d" % uid)
        if condstore:
            parts.append(b"MODSEQ (%d)" % modseq)
        return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


def compress_uids(uids: Iterable[int]) -> bytes:
    """Ascending UIDs as a compact sequence set: 1:3,7,9:10."""
    out: list[bytes] = []
    ordered = sorted(uids)
    if not ordered:
        return b""
    start = prev = ordered[0]
    for u in ordered[1:]:
        if u == prev + 1:
            prev = u
            continue
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = u
    out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)
