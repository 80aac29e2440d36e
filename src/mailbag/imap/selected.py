"""The client's view of its selected mailbox (RFC 9051 §2.3.1.2 sequence
numbers, §5.2 mailbox size and message status updates, §7.5.1 EXPUNGE rules;
RFC 7162 §3.2.10 VANISHED).

The store speaks UIDs only. This object maps sequence numbers to UIDs for one
session, remembers what the client was last told (flags, modseq) and turns
store changes into the untagged responses the client may be sent now.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailbag.store.api import Changes, MailboxInfo, MessageMeta
from mailbag.wire.commands import SequenceSet


@dataclass(slots=True)
class Known:
    flags: frozenset[str]
    modseq: int


@dataclass(slots=True)
class SelectedMailbox:
    info: MailboxInfo
    readonly: bool
    uids: list[int] = field(default_factory=list)           # index = seq - 1
    known: dict[int, Known] = field(default_factory=dict)
    recent: set[int] = field(default_factory=set)
    modseq: int = 0                                        # store modseq seen
    dirty: bool = False                                    # store said "changed"
    saved_search: list[int] | None = None                  # SEARCHRES $
    keywords: set[str] = field(default_factory=set)
    # Lowest UID of new arrivals this session has claimed as \Recent (RFC 3501
    # §2.3.2: only one session sees a message as recent); kept across a
    # deferred update so the claim is not lost.
    recent_from: int | None = None

    @classmethod
    def load(
        cls, info: MailboxInfo, readonly: bool, metas: Iterable[MessageMeta], first_recent: int
    ) -> SelectedMailbox:
        view = cls(info=info, readonly=readonly, modseq=info.highestmodseq)
        for m in metas:
            view.uids.append(m.uid)
            view.known[m.uid] = Known(m.flags, m.modseq)
            if m.uid >= first_recent:
                view.recent.add(m.uid)
        return view

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
    def apply(self, changes: Changes, allow_expunge: bool, condstore: bool,
              qresync: bool) -> list[bytes] | None:
        """Untagged responses for store changes, or None when they must wait
        (an expunge while EXPUNGE responses are not allowed)."""
        gone = [u for u in changes.expunged if u in self.known]
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
                self.known.pop(u, None)
                self.recent.discard(u)
        fetches: list[bytes] = []
        last = self.uids[-1] if self.uids else 0
        added = False
        for m in changes.changed:
            k = self.known.get(m.uid)
            if k is None:
                if m.uid > last:
                    self.uids.append(m.uid)
                    self.known[m.uid] = Known(m.flags, m.modseq)
                    if self.recent_from is not None and m.uid >= self.recent_from:
                        self.recent.add(m.uid)
                    last = m.uid
                    added = True
                    self.keywords.update(f for f in m.flags if not f.startswith("\\"))
                continue
            if k.flags != m.flags or (condstore and m.modseq > k.modseq):
                seq = self.seq_of(m.uid)
                k.flags, k.modseq = m.flags, m.modseq
                self.keywords.update(f for f in m.flags if not f.startswith("\\"))
                if seq is not None:
                    fetches.append(self.fetch_flags_line(seq, m.uid, condstore, uid_item=qresync))
            else:
                k.modseq = max(k.modseq, m.modseq)
        if added:
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        out.extend(fetches)
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.dirty = False
        self.recent_from = None
        return out

    def has_new(self, changes: Changes) -> bool:
        last = self.uids[-1] if self.uids else 0
        return any(m.uid > last for m in changes.changed)

    def fetch_flags_line(self, seq: int, uid: int, condstore: bool, uid_item: bool) -> bytes:
        k = self.known[uid]
        flags = list(k.flags)
        if uid in self.recent:
            flags.append("\\Recent")
        parts = [b"FLAGS (" + " ".join(sorted(flags)).encode() + b")"]
        if uid_item:
            parts.insert(0, b"UID %d" % uid)
        if condstore:
            parts.append(b"MODSEQ (%d)" % k.modseq)
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
