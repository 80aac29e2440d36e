"""Typed IMAP commands: what the parser (wire/parser.py) produces and the session
(imap/) consumes. RFC 9051 §6 and §9 (grammar), RFC 3501 forms clients still send,
and the extension arguments mailbag accepts (CONDSTORE/QRESYNC RFC 7162,
LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, ESEARCH
RFC 4731, SEARCHRES RFC 5182, MOVE RFC 6851, UIDPLUS RFC 4315, ID RFC 2971).

Strings are kept as bytes where the protocol allows 8-bit data (search strings,
header names, passwords) and as str where they are names (mailboxes: the raw
astring decoded as UTF-8 with surrogateescape; the session applies modified
UTF-7 decoding when UTF8=ACCEPT is not enabled).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal as L

# --------------------------------------------------------------------- sets


@dataclass(frozen=True, slots=True)
class SeqRange:
    """n, n:m or with '*' (None). Order of the two ends is not significant."""

    start: int | None
    end: int | None

    def bounds(self, star: int) -> tuple[int, int]:
        a = star if self.start is None else self.start
        b = star if self.end is None else self.end
        return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A sequence-set; ``saved`` is the SEARCHRES '$' marker (ranges then empty)."""

    ranges: tuple[SeqRange, ...]
    saved: bool = False

    def contains(self, n: int, star: int) -> bool:
        for r in self.ranges:
            a, b = r.bounds(star)
            if a <= n <= b:
                return True
        return False

    def iter_values(self, star: int) -> Iterator[int]:
        """Every number in the set, ascending, without duplicates, capped at star
        only for '*' (callers clamp to what exists)."""
        spans = sorted(r.bounds(star) for r in self.ranges)
        last = 0
        for a, b in spans:
            a = max(a, last + 1)
            if a > b:
                continue
            yield from range(a, b + 1)
            last = b


# --------------------------------------------------------------- fetch items

SectionText = L["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]


@dataclass(frozen=True, slots=True)
class Section:
    """BODY[<part>.<text>] / BINARY[<part>]. Empty part and text None is BODY[]."""

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[bytes, ...] = ()  # for HEADER.FIELDS[.NOT], upper-cased


@dataclass(frozen=True, slots=True)
class Partial:
    """<start.length> (length None: to the end; only used internally)."""

    start: int
    length: int | None


FetchName = L[
    "FLAGS", "ENVELOPE", "INTERNALDATE", "RFC822.SIZE", "UID", "BODYSTRUCTURE",
    "BODY",          # BODY without section: non-extensible BODYSTRUCTURE
    "BODY[]",        # BODY[section]<partial> and BODY.PEEK[...]
    "BINARY[]",      # BINARY[section]<partial> and BINARY.PEEK[...]
    "BINARY.SIZE",   # BINARY.SIZE[section]
    "RFC822", "RFC822.HEADER", "RFC822.TEXT",
    "MODSEQ", "PREVIEW", "SAVEDATE", "EMAILID", "THREADID",
]


@dataclass(frozen=True, slots=True)
class FetchAtt:
    name: FetchName
    section: Section | None = None
    peek: bool = False
    partial: Partial | None = None
    lazy: bool = False                  # PREVIEW (LAZY), RFC 8970


@dataclass(frozen=True, slots=True)
class FetchModifiers:
    changedsince: int | None = None
    vanished: bool = False


# ------------------------------------------------------------------ search

@dataclass(frozen=True, slots=True)
class SearchAll:
    pass


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """ANSWERED/DELETED/DRAFT/FLAGGED/SEEN/KEYWORD x and the UN* forms.
    NEW, OLD and RECENT are expressed with flag '\\Recent' (+SEEN for NEW)."""

    flag: str        # "\\Seen", "$Forwarded", "\\Recent"
    present: bool


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """HEADER name value; FROM/TO/CC/BCC/SUBJECT are parsed to this too."""

    name: bytes      # upper-cased, e.g. b"FROM"
    value: bytes


@dataclass(frozen=True, slots=True)
class SearchText:
    where: L["BODY", "TEXT"]
    value: bytes


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE."""

    op: L["BEFORE", "ON", "SINCE"]
    sent: bool
    day: date


@dataclass(frozen=True, slots=True)
class SearchWithin:
    """RFC 5032 OLDER/YOUNGER n seconds (on INTERNALDATE)."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchSize:
    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class SearchSet:
    """A bare sequence-set (uid False) or UID set (uid True)."""

    uid: bool
    set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchModseq:
    """CONDSTORE MODSEQ [entry-name entry-type] n (entry is ignored)."""

    modseq: int


@dataclass(frozen=True, slots=True)
class SearchSaveDate:
    """RFC 8514 §4 SAVEDBEFORE/SAVEDON/SAVEDSINCE (on the save date)."""

    op: L["BEFORE", "ON", "SINCE"]
    day: date


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """RFC 8474 §6 EMAILID/THREADID objectid."""

    kind: L["EMAILID", "THREADID"]
    value: str


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """A parenthesized list, and the top level of a SEARCH."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll | SearchFlag | SearchHeader | SearchText | SearchDate | SearchWithin
    | SearchSize | SearchSet | SearchModseq | SearchNot | SearchOr | SearchAnd
    | SearchSaveDate | SearchObjectId
)

# RETURN options of ESEARCH (RFC 4731), SEARCHRES (RFC 5182) SAVE and
# CONTEXT=SEARCH (RFC 5267 §4: UPDATE, CONTEXT, PARTIAL).
SearchReturn = L["MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "CONTEXT", "PARTIAL"]


@dataclass(frozen=True, slots=True)
class PartialRange:
    """RETURN (PARTIAL first:last): 1-based positions in the result, first <= last."""

    first: int
    last: int


# ---------------------------------------------------------------- commands

@dataclass(frozen=True, slots=True)
class Command:
    tag: str


@dataclass(frozen=True, slots=True)
class Capability(Command):
    pass


@dataclass(frozen=True, slots=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True)
class Logout(Command):
    pass


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    pass


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    mechanism: str                      # upper-cased
    initial_response: bytes | None      # SASL-IR, base64-decoded; b"" for "="


@dataclass(frozen=True, slots=True)
class Login(Command):
    username: bytes
    password: bytes


@dataclass(frozen=True, slots=True)
class Enable(Command):
    capabilities: tuple[str, ...]       # upper-cased


@dataclass(frozen=True, slots=True)
class QresyncParams:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None  # (seqs, uids)


@dataclass(frozen=True, slots=True)
class Select(Command):
    mailbox: str
    readonly: bool = False              # EXAMINE
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create(Command):
    mailbox: str
    special_use: tuple[str, ...] = ()   # CREATE box (USE (\Drafts))


@dataclass(frozen=True, slots=True)
class Delete(Command):
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    mailbox: str


@dataclass(frozen=True, slots=True)
class List(Command):
    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()     # SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE
    returns: tuple[str, ...] = ()       # SUBSCRIBED CHILDREN SPECIAL-USE
    status_items: tuple[str, ...] = ()  # RETURN (STATUS (...)), LIST-STATUS
    extended: bool = False              # any LIST-EXTENDED syntax was used


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    pass


@dataclass(frozen=True, slots=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]              # upper-cased: MESSAGES UIDNEXT UIDVALIDITY
    # UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT


@dataclass(frozen=True, slots=True)
class CatenateText:
    """TEXT literal of a CATENATE list (RFC 4469 §5)."""

    data: bytes
    binary: bool = False


@dataclass(frozen=True, slots=True)
class CatenateUrl:
    """URL part of a CATENATE list: an IMAP URL (RFC 5092), as sent."""

    url: str


CatenatePart = CatenateText | CatenateUrl


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: tuple[str, ...]
    internaldate: datetime | None
    data: bytes
    binary: bool = False                # sent as ~{n} literal8
    # CATENATE (RFC 4469): the message is assembled from these parts; data is b"".
    parts: tuple[CatenatePart, ...] | None = None


@dataclass(frozen=True, slots=True)
class Append(Command):
    mailbox: str
    messages: tuple[AppendMessage, ...]  # more than one: MULTIAPPEND


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """COMPRESS (RFC 4978 §3)."""
    mechanism: str                      # upper-cased; only DEFLATE exists


@dataclass(frozen=True, slots=True)
class Idle(Command):
    pass


@dataclass(frozen=True, slots=True)
class Check(Command):
    pass


@dataclass(frozen=True, slots=True)
class Close(Command):
    pass


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    pass


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    uids: SequenceSet | None = None     # UID EXPUNGE set


@dataclass(frozen=True, slots=True)
class Search(Command):
    uid: bool
    key: SearchKey
    charset: str | None = None
    returns: tuple[SearchReturn, ...] | None = None  # None: no RETURN given
    partial: PartialRange | None = None              # RETURN (PARTIAL n:m)


# RETURN options of SORT with ESORT and CONTEXT=SORT (RFC 5267 §3, §4).
ContextReturn = SearchReturn

SortKeyName = L["ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                "DISPLAYFROM", "DISPLAYTO"]


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: SortKeyName
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """SORT / UID SORT (RFC 5256 §3, RFC 5957 DISPLAY keys, RFC 5267 RETURN)."""

    uid: bool
    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    returns: tuple[ContextReturn, ...] | None = None  # None: no RETURN given
    partial: PartialRange | None = None


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """THREAD / UID THREAD (RFC 5256 §3); algorithm upper-cased, unchecked."""

    uid: bool
    algorithm: str
    charset: str
    key: SearchKey


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """CANCELUPDATE "tag" ... (RFC 5267 §4.3)."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    uid: bool
    set: SequenceSet
    items: tuple[FetchAtt, ...]
    macro: str | None = None            # ALL / FAST / FULL, already expanded in items
    modifiers: FetchModifiers = field(default_factory=FetchModifiers)


@dataclass(frozen=True, slots=True)
class Store(Command):
    uid: bool
    set: SequenceSet
    mode: L["+", "-", ""]               # +FLAGS, -FLAGS, FLAGS
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(Command):
    uid: bool
    set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move(Command):
    uid: bool
    set: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Id(Command):
    params: tuple[tuple[str, str | None], ...] | None  # None for "ID NIL"


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """One event of a NOTIFY event group (RFC 5465 §5, §8 "event"). Known
    names are in their RFC spelling ("MessageNew"); an unknown event-ext
    atom is kept as sent, so that the session can answer NO [BADEVENT]."""

    name: str
    fetch: tuple[FetchAtt, ...] = ()    # MessageNew (fetch-att ...), SELECTED only


NotifyFilter = L["SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED",
                 "SUBTREE", "MAILBOXES"]


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """"(" filter-mailboxes SP events ")" (RFC 5465 §6, §8)."""

    filter: NotifyFilter
    mailboxes: tuple[str, ...] = ()     # SUBTREE / MAILBOXES names, as sent
    events: tuple[NotifyEvent, ...] = ()  # empty: NONE


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """NOTIFY SET [STATUS] groups / NOTIFY NONE (RFC 5465 §3.1)."""

    groups: tuple[NotifyGroup, ...] | None  # None: NOTIFY NONE
    status: bool = False


# ------------------------------------------------------------ parser events

@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """The parser met a synchronizing literal {n}: the session must answer
    '+ ...' before the client sends the n bytes (or refuse it with the tagged
    response in ``refusal`` when it is over a limit)."""

    size: int


@dataclass(frozen=True, slots=True)
class AuthLine:
    """A line sent while the session waits for a SASL continuation answer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class IdleDone:
    """DONE ended an IDLE."""


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A command that could not be parsed. ``tag`` is None when not even a tag
    was found ('* BAD'). ``code`` is a response code such as 'TOOBIG'/'LIMIT'
    or None; ``fatal`` asks the session to close the connection (e.g. an
    unrecoverable framing error). ``status`` is 'BAD' or 'NO'."""

    tag: str | None
    message: str
    code: str | None = None
    status: L["BAD", "NO"] = "BAD"
    fatal: bool = False


ParserEvent = Command | NeedContinuation | AuthLine | IdleDone | ProtocolError
