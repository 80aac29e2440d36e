"""THREAD algorithms of RFC 5256 §3: ORDEREDSUBJECT and REFERENCES (§3
"REFERENCES" steps 1-6), and the thread-list rendering of §4 ("thread-list",
"thread-members", "thread-nested").

The algorithms are pure functions over ThreadMessage facts (``load`` reads
them from the keys the store keeps per message, mime/sortkeys.py;
``load_from_records`` computes them from facts); messages are identified by
UID and the caller maps them to sequence numbers when rendering.

Where RFC 5256 leaves room, this follows Dovecot (which the imaptest thread
scripts were written against): a message's own References always replace a
parent link made earlier from another message's References, and when that
new link would make a loop the message is left without a parent; a message
without References loses any such earlier parent link too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailbag.imap import search as _search
from mailbag.imap import sort_cache
from mailbag.mime.message import ParsedMessage
from mailbag.mime.sortkeys import casemap, is_reply_or_forward, thread_ids
from mailbag.store.api import Store, ThreadMessage

__all__ = ["ALGORITHMS", "Node", "ThreadMessage", "is_reply_or_forward", "load",
           "load_from_records", "message_facts", "ordered_subject", "references", "render", "threads"]

ALGORITHMS = ("REFERENCES", "ORDEREDSUBJECT")


@dataclass(eq=False, slots=True)
class Node:
    """A container of the REFERENCES algorithm; ``msg`` None is a dummy."""

    msg: ThreadMessage | None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)


def message_facts(uid: int, parsed: ParsedMessage, internal: float) -> ThreadMessage:
    mid, refs = thread_ids(parsed)
    date = parsed.sent_date.timestamp() if parsed.sent_date is not None else internal
    return ThreadMessage(uid, date, casemap(parsed.base_subject),
                         is_reply_or_forward(parsed.subject), mid, refs)


async def load(store: Store, mailbox_id: int, uids: Sequence[int]) -> list[ThreadMessage]:
    """Facts of ``uids`` (ascending UID = sequence order) from the keys the
    store keeps per message (one query)."""
    if not uids:
        return []
    return await store.thread_facts(mailbox_id, sorted(set(uids)))


async def threads(store: Store, mailbox_id: int, uidvalidity: int, algorithm: str,
                  uids: Sequence[int]) -> list[Node]:
    """The thread trees of ``uids`` by ``algorithm`` (one of ALGORITHMS); a
    big mailbox's trees are kept in memory while its messages stay the same
    (imap/sort_cache.py says why that is safe). Callers only read them."""
    ordered = sorted(set(uids))
    key = ("thread", mailbox_id, uidvalidity, algorithm)
    cacheable = len(ordered) >= sort_cache.MIN_UIDS and uidvalidity != 0
    mark = await store.expunge_mark(mailbox_id) if cacheable else 0
    if cacheable:
        roots: list[Node] | None = sort_cache.cached_trees(store, key, mark, ordered)
        if roots is not None:
            return roots
    messages = await load(store, mailbox_id, ordered)
    roots = references(messages) if algorithm == "REFERENCES" else ordered_subject(messages)
    if cacheable:
        sort_cache.remember_trees(store, key, mark, ordered, roots)
    return roots


async def load_from_records(store: Store, mailbox_id: int,
                            uids: Sequence[int]) -> list[ThreadMessage]:
    """``load`` computed from each message's record and facts, in bounded
    batches (the reference the stored keys are tested against)."""
    ordered = sorted(set(uids))
    out: list[ThreadMessage] = []
    for i in range(0, len(ordered), _search.BATCH):
        for rec in await store.fetch_records(mailbox_id, ordered[i:i + _search.BATCH]):
            parsed = ParsedMessage.from_bytes(rec.facts)
            out.append(message_facts(rec.uid, parsed, rec.internaldate.timestamp()))
        await asyncio.sleep(0)   # let other connections run between batches
    out.sort(key=lambda m: m.uid)
    return out


# ------------------------------------------------------------ ORDEREDSUBJECT

def ordered_subject(messages: Sequence[ThreadMessage]) -> list[Node]:
    """Group by base subject; within a group sort by date, the first message
    is the parent of the others; threads in order of their first message."""
    groups: dict[str, list[ThreadMessage]] = {}
    for m in messages:                       # sequence order: ties stay in it
        groups.setdefault(m.subject, []).append(m)
    roots: list[Node] = []
    for group in groups.values():
        group.sort(key=lambda m: m.date)
        root = Node(group[0])
        root.children = [Node(m, root) for m in group[1:]]
        roots.append(root)
    roots.sort(key=lambda n: _key(n))
    return roots


# ---------------------------------------------------------------- REFERENCES

def _is_ancestor(a: Node, b: Node | None) -> bool:
    """True when ``a`` is ``b`` or one of its ancestors."""
    while b is not None:
        if b is a:
            return True
        b = b.parent
    return False


def _unlink(n: Node) -> None:
    if n.parent is not None:
        n.parent.children.remove(n)
        n.parent = None


def _link(parent: Node, child: Node) -> None:
    _unlink(child)
    child.parent = parent
    parent.children.append(child)


def _key(n: Node) -> tuple[float, int]:
    m = n.msg
    if m is None:                            # a dummy sorts as its first child
        return _key(n.children[0]) if n.children else (0.0, 0)
    return (m.date, m.uid)


def references(messages: Sequence[ThreadMessage]) -> list[Node]:
    """RFC 5256 REFERENCES; ``messages`` in sequence order."""
    table: dict[str, Node] = {}

    def container(mid: str) -> Node:
        node = table.get(mid)
        if node is None:
            node = table[mid] = Node(None)
        return node

    # (1) link messages by Message-ID and References
    for m in messages:
        mid = m.message_id
        if mid is None or (mid in table and table[mid].msg is not None):
            mid = f"\0{m.uid}"               # missing or duplicate: make it unique
        node = container(mid)
        node.msg = m
        prev: Node | None = None
        for ref in m.references:              # (1A)
            r = container(ref)
            if prev is not None and r.parent is None and not _is_ancestor(r, prev):
                _link(prev, r)
            prev = r
        _unlink(node)                         # (1C) its own References win
        if prev is not None and not _is_ancestor(node, prev):
            _link(prev, node)
    # (2) the root set
    roots = [n for n in table.values() if n.parent is None]
    # (3) prune dummies
    roots = _prune(roots, at_root=True)
    # (4) sort the root set (children first: a dummy sorts as its first child)
    for n in roots:
        _sort_tree(n)
    roots.sort(key=_key)
    # (5) gather threads with the same base subject
    roots = _gather_subjects(roots)
    # (6) sort every set of siblings
    for n in roots:
        _sort_tree(n)
    roots.sort(key=_key)
    return roots


def _prune(nodes: list[Node], at_root: bool) -> list[Node]:
    out: list[Node] = []
    for n in nodes:
        n.children = _prune(n.children, at_root=False)
        if n.msg is None:
            if not n.children:
                continue
            if not at_root or len(n.children) == 1:
                for ch in n.children:
                    ch.parent = n.parent
                out.extend(n.children)
                continue
        out.append(n)
    return out


def _sort_tree(n: Node) -> None:
    for ch in n.children:
        _sort_tree(ch)
    n.children.sort(key=_key)


def _thread_subject(n: Node) -> tuple[str, Node]:
    m = n.msg if n.msg is not None else n.children[0].msg
    assert m is not None                      # dummies never nest after pruning
    return m.subject, n


def _is_reply(n: Node) -> bool:
    return n.msg is not None and n.msg.reply


def _prefer(n: Node, old: Node) -> bool:
    """(5B.iv): a dummy, or a non-reply over a reply, replaces a message."""
    return old.msg is not None and (n.msg is None or (_is_reply(old) and not _is_reply(n)))


def _gather_subjects(roots: list[Node]) -> list[Node]:
    table: dict[str, Node] = {}
    for n in roots:                                           # (5B)
        subject, _ = _thread_subject(n)
        if not subject:
            continue
        old = table.get(subject)
        if old is None or _prefer(n, old):
            table[subject] = n
    out: list[Node] = []
    for n in roots:                                           # (5C)
        subject, _ = _thread_subject(n)
        other = table.get(subject) if subject else None
        if other is None or other is n:
            out.append(n)
            continue
        if other.msg is None and n.msg is None:
            for ch in n.children:
                ch.parent = other
            other.children.extend(n.children)
        elif other.msg is None or (_is_reply(n) and not _is_reply(other)):
            n.parent = other
            other.children.append(n)
        else:
            dummy = Node(None)
            for ch in (other, n):
                ch.parent = dummy
                dummy.children.append(ch)
            table[subject] = dummy
            where = next((i for i, x in enumerate(out) if x is other), None)
            if where is not None:
                out[where] = dummy
            else:                                  # ``other`` comes later in roots
                _replace_later(roots, other, dummy)
    return out


def _replace_later(roots: list[Node], old: Node, new: Node) -> None:
    for i, x in enumerate(roots):
        if x is old:
            roots[i] = new
            return


# ----------------------------------------------------------------- rendering

def render(roots: Sequence[Node], number: Callable[[int], int]) -> bytes:
    """The THREAD response data: one thread-list per root. ``number`` maps a
    UID to what the client is told (sequence number or UID)."""
    return b"".join(b"(" + _members(n, number) + b")" for n in roots)


def _members(n: Node, number: Callable[[int], int]) -> bytes:
    kids = n.children
    if n.msg is None:
        if len(kids) == 1:
            return _members(kids[0], number)
        return b"".join(b"(" + _members(k, number) + b")" for k in kids)
    own = b"%d" % number(n.msg.uid)
    if not kids:
        return own
    if len(kids) == 1:
        return own + b" " + _members(kids[0], number)
    return own + b" " + b"".join(b"(" + _members(k, number) + b")" for k in kids)
