"""The client's view of its selected mailbox (RFC 9051 §2.3.1.2 sequence
numbers, §5.2 mailbox size and message status updates, §7.5.1 EXPUNGE rules;
RFC 7162 §3.2.10 VANISHED, §3.2.5 the QRESYNC resync of SELECT with
known-uids and seq-match-data, §3.2.6 UID FETCH (CHANGEDSINCE n VANISHED)).

The store speaks UIDs only. This object maps sequence numbers to UIDs for one
session, remembers what the client was last told (flags, modseq) and turns
store changes into the untagged responses the client may be sent now.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from mailbag.store.api import Changes, MailboxInfo, MessageMeta
from mailbag.store.index import MailboxIndex
from mailbag.wire.commands import QresyncParams, SequenceSet

# '*' in a UID set the client sends about UIDs it may no longer see (known-uids,
# the VANISHED modifier's set): every UID there could ever be.
MAX_UID = 2**32 - 1

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

    def flags_map(self) -> Mapping[int, frozenset[str]]:
        """uid -> flags for every message the client knows of and that still
        exists: a view on the index, so a SEARCH that never tests a flag
        never pays for a copy of 100,000 of them."""
        return _FlagsView(self)

    # ----------------------------------------------------------- numbering
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def seqs_of(self, uids: Sequence[int]) -> list[int]:
        """seq_of for many UIDs, in their order, leaving out those not in
        the view: a SEARCH that matches 100,000 messages numbers them with
        one dict instead of 100,000 binary searches."""
        mine = self.uids
        if len(uids) == len(mine) and (uids == mine or list(uids) == mine):
            return list(range(1, len(mine) + 1))      # every message matched
        if len(uids) * 20 < len(mine):
            return [q for u in uids if (q := self.seq_of(u)) is not None]
        where = {u: q for q, u in enumerate(mine, 1)}
        return [q for u in uids if (q := where.get(u)) is not None]

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
        if seqset.saved:
            return [(q, u) for u in self.resolve(seqset, uid)
                    if (q := self.seq_of(u)) is not None]
        uids = self.uids
        return [(i + 1, uids[i]) for lo, hi in self.spans(seqset, uid) for i in range(lo, hi)]

    def spans(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """The [lo, hi) positions in the view a sequence or UID set names
        (not '$'), merged and ascending."""
        uids = self.uids
        if not uids:
            return []
        raw: list[tuple[int, int]] = []
        if uid:
            star = uids[-1]
            for r in seqset.ranges:
                a, b = r.bounds(star)
                raw.append((bisect_left(uids, a), bisect_left(uids, b + 1)))
        else:
            star = len(uids)
            for r in seqset.ranges:
                a, b = r.bounds(star)
                raw.append((max(a, 1) - 1, min(b, star)))
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(x for x in raw if x[0] < x[1]):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return merged

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
              qresync: bool, flags: bool = True,
              uid_item: bool | None = None) -> list[bytes] | None:
        """Untagged responses for store changes, or None when they must wait
        (an expunge while EXPUNGE responses are not allowed). Without
        *flags* other sessions' flag changes are folded in unsent (NOTIFY
        without FlagChange, RFC 5465 §5); FETCH FLAGS reads the shared
        index, so it still answers the current flags. *uid_item*: flag
        change FETCHes carry UID (default: under QRESYNC)."""
        if uid_item is None:
            uid_item = qresync
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
            if flags:
                fetches.append(self.fetch_flags_line(seq, m.uid, m.flags, m.modseq, condstore,
                                                     uid_item=uid_item))
        if added:
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
        out.extend(fetches)
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.dirty = False
        self.recent_from = None
        if self.told:
            self.told = {u: ms for u, ms in self.told.items() if ms > self.modseq}
        return out

    # ------------------------------------------------------------ resync
    def changed_pairs(self, seqset: SequenceSet, uid: bool, candidates: Iterable[int],
                      since: int) -> list[tuple[int, int]]:
        """(seq, UID) pairs of the set whose modseq is above *since*
        (CHANGEDSINCE, RFC 7162 §3.1.4). *candidates* are the UIDs the store
        says changed since then (ascending), so the cost follows what
        changed, not the mailbox size."""
        if seqset.saved:
            saved = set(self.saved_search or ())
            def wanted(seq: int, u: int) -> bool:
                return u in saved
        else:
            spans = Spans(seqset, (self.uids[-1] if self.uids else 0) if uid else len(self.uids))
            def wanted(seq: int, u: int) -> bool:
                return (u if uid else seq) in spans
        out: list[tuple[int, int]] = []
        for u in candidates:
            seq = self.seq_of(u)
            if seq is None or not wanted(seq, u):
                continue
            # The shared index decides: it is what FETCH answers from, and a
            # change it has not seen yet reaches the client as an update.
            modseq = self.modseq_of(u)
            if modseq is not None and modseq > since:
                out.append((seq, u))
        return out

    def vanished_earlier(self, expunged: Iterable[int], within: Spans | None = None,
                         above: int = 0) -> bytes | None:
        """"* VANISHED (EARLIER) uids" for expunged UIDs (in *within*, above
        *above*), None when there are none. UIDs still in the view are left
        out: the client has not been told yet, and is told with a plain
        VANISHED that lowers EXISTS (RFC 7162 §3.2.10)."""
        gone = [u for u in expunged if u > above and (within is None or u in within)
                and self.seq_of(u) is None]
        if not gone:
            return None
        return b"* VANISHED (EARLIER) " + compress_uids(gone) + b"\r\n"

    def match_floor(self, samples: Sequence[tuple[int, int]]) -> int:
        """The highest UID below which the client's numbering still holds
        (RFC 7162 §3.2.5.2 seq-match-data): walking the client's (seq, UID)
        pairs upwards until the first one that no longer matches. Nothing
        the client knew at or below it was expunged, since new messages
        only ever get higher UIDs; so VANISHED (EARLIER) skips it."""
        floor = 0
        for seq, u in samples:
            if self.seq_of(u) != seq:
                break
            floor = u
        return floor

    def resync(self, params: QresyncParams, samples: Sequence[tuple[int, int]],
               changes: Changes) -> list[bytes]:
        """What SELECT/EXAMINE (QRESYNC ...) sends after the usual responses
        (RFC 7162 §3.2.5.1): VANISHED (EARLIER) for the client's messages
        expunged since its modseq, then FETCH (UID FLAGS MODSEQ) for every
        message changed since. *changes* is the store's answer for that
        modseq; the caller has checked UIDVALIDITY."""
        known = Spans(params.known_uids, MAX_UID) if params.known_uids is not None else None
        out: list[bytes] = []
        line = self.vanished_earlier(changes.expunged, known, self.match_floor(samples))
        if line is not None:
            out.append(line)
        for m in changes.changed:
            if known is not None and m.uid not in known:
                continue
            seq = self.seq_of(m.uid)
            i = self._position(m.uid) if seq is not None else None
            if seq is None or i is None:
                continue
            flags, modseq = self.index.flags[i], self.index.modseqs[i]
            if modseq <= params.modseq:
                continue
            if modseq > self.modseq:
                # Reported now with what the index holds: not again by apply().
                self.told[m.uid] = modseq
            out.append(self.fetch_flags_line(seq, m.uid, flags, modseq, True, uid_item=True))
        if changes.highestmodseq > self.modseq:
            self.dirty = True
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


class _FlagsView(Mapping[int, frozenset[str]]):
    __slots__ = ("_sel",)

    def __init__(self, sel: SelectedMailbox) -> None:
        self._sel = sel

    def __getitem__(self, uid: int) -> frozenset[str]:
        flags = self._sel.flags_of(uid) if self._sel.seq_of(uid) is not None else None
        if flags is None:
            raise KeyError(uid)
        return flags

    def __iter__(self) -> Iterator[int]:
        return (u for u in self._sel.uids if self._sel.flags_of(u) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def snapshot(self) -> dict[int, frozenset[str]]:
        """The whole mapping at once: a SEARCH that tests a flag on every
        message (SORT ... UNSEEN) would otherwise pay two binary searches
        per message, ~200 ms for 100,000; this is two C-speed passes."""
        index = self._sel.index
        everything = dict(zip(index.uids, index.flags, strict=True))
        return {u: everything[u] for u in self._sel.uids if u in everything}


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


class Spans:
    """Membership in a sequence set by bisection over its merged ranges:
    the test costs the same whether the set is "1:100000" or one number."""

    __slots__ = ("starts", "ends")

    def __init__(self, seqset: SequenceSet, star: int) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for a, b in sorted(r.bounds(star) for r in seqset.ranges):
            if self.ends and a <= self.ends[-1] + 1:
                self.ends[-1] = max(self.ends[-1], b)
            else:
                self.starts.append(a)
                self.ends.append(b)

    def __contains__(self, n: int) -> bool:
        i = bisect_right(self.starts, n) - 1
        return i >= 0 and n <= self.ends[i]


def seq_match_samples(seqs: SequenceSet, uids: SequenceSet) -> list[tuple[int, int]]:
    """The (seq, UID) pairs of QRESYNC seq-match-data worth checking: the
    ends of each UID range with the sequence numbers at the same places
    (as Dovecot does), so "1:100000 1:100000" costs two pairs, not 100,000.
    ValueError when the two sets do not hold as many numbers, or use '*'
    (RFC 7162 §3.2.5 grammar: known-sequence-set, known-uid-set)."""
    if seqs.saved or uids.saved or any(
            r.start is None or r.end is None for r in (*seqs.ranges, *uids.ranges)):
        raise ValueError("'*' and '$' are not allowed in seq-match-data")
    seq_spans = Spans(seqs, 0)
    uid_spans = Spans(uids, 0)
    counts = [b - a + 1 for a, b in zip(seq_spans.starts, seq_spans.ends, strict=True)]
    if sum(counts) != sum(b - a + 1 for a, b in zip(uid_spans.starts, uid_spans.ends,
                                                      strict=True)):
        raise ValueError("the known sequence set and known UID set differ in size")
    offsets: list[int] = []          # place of each sequence span's first number
    total = 0
    for c in counts:
        offsets.append(total)
        total += c

    def nth(n: int) -> int:
        i = bisect_right(offsets, n) - 1
        return seq_spans.starts[i] + n - offsets[i]

    out: list[tuple[int, int]] = []
    n = 0
    for a, b in zip(uid_spans.starts, uid_spans.ends, strict=True):
        out.append((nth(n), a))
        if b > a:
            out.append((nth(n + b - a), b))
        n += b - a + 1
    return out
