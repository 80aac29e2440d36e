"""LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), LIST-EXTENDED (RFC 5258),
LIST-STATUS (RFC 5819), SPECIAL-USE return option (RFC 6154 §2) and CHILDREN
attributes (RFC 3348).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.imap import names
from mailbag.imap.commands.mailboxes import check_status_items, status_line
from mailbag.imap.registry import AUTH, Reply, bad, command
from mailbag.store.api import SEPARATOR, MailboxInfo
from mailbag.wire.commands import List, Lsub
from mailbag.wire.values import astring

if TYPE_CHECKING:
    from mailbag.imap.session import Session

SELECTION = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
RETURNS = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"}


@dataclass
class Node:
    name: str
    info: MailboxInfo | None = None        # None: not an existing mailbox
    subscribed: bool = False
    has_children: bool = False
    subscribed_child: bool = False
    attrs: list[str] = field(default_factory=list)


def _tree(boxes: list[MailboxInfo], subs: list[str]) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    for info in boxes:
        nodes[info.name] = Node(info.name, None if info.noselect else info)
    for name in subs:
        nodes.setdefault(name, Node(name)).subscribed = True
    for name, node in list(nodes.items()):
        for parent in names.parents(name):
            p = nodes.setdefault(parent, Node(parent))
            if node.subscribed:
                p.subscribed_child = True
    # Only real mailboxes give a parent children: a subscription to a mailbox
    # that is gone does not.
    for info in boxes:
        for parent in names.parents(info.name):
            nodes[parent].has_children = True
    return nodes


def _line(s: Session, node: Node, attrs: list[str], extra: bytes = b"") -> bytes:
    name = astring(s.client_name(node.name)) if node.name else b'""'
    return (b"* LIST (" + " ".join(attrs).encode() + b') "/" ' + name + extra + b"\r\n")


def _implied_parent_shown(name: str, nodes: dict[str, Node], matchers: list[re.Pattern[str]]) -> bool:
    """A name that is not a mailbox but has mailboxes below it is listed
    (\\NonExistent/\\Noselect) when the patterns would not show those
    descendants themselves, as with '%' (RFC 5258 §3, RFC 3501 §6.3.8)."""
    prefix = name + SEPARATOR
    return any(
        n.startswith(prefix) and node.info is not None
        and not any(m.fullmatch(n) for m in matchers)
        for n, node in nodes.items()
    )


def _unlisted_subscribed_child(
    name: str, nodes: dict[str, Node], matchers: list[re.Pattern[str]]
) -> bool:
    """RECURSIVEMATCH: a subscribed descendant the patterns do not list
    themselves earns its parent a CHILDINFO (RFC 5258 §3.5)."""
    if not nodes[name].subscribed_child:
        return False
    prefix = name + SEPARATOR
    return any(
        n.startswith(prefix) and node.subscribed and not any(m.fullmatch(n) for m in matchers)
        for n, node in nodes.items()
    )


def _pattern(s: Session, pattern: str) -> str:
    try:
        return names.from_client(pattern, s.utf8)
    except names.BadName:
        # No stored name has this spelling, but a pattern is still a pattern:
        # it matches nothing, which is not an error.
        return pattern


@command(List, AUTH)
async def list_(s: Session, cmd: List) -> Reply:
    for opt in cmd.selection:
        if opt not in SELECTION:
            raise bad(f"Unknown LIST selection option {opt}")
    for opt in cmd.returns:
        if opt not in RETURNS:
            raise bad(f"Unknown LIST return option {opt}")
    if "RECURSIVEMATCH" in cmd.selection and not (set(cmd.selection) - {"RECURSIVEMATCH", "REMOTE"}):
        raise bad("RECURSIVEMATCH needs another selection option")
    if cmd.status_items:
        check_status_items(cmd.status_items)

    if not cmd.extended and cmd.patterns == ("",):
        s.send(b'* LIST (\\Noselect) "/" ""\r\n')
        return Reply(text="LIST completed")

    account = s.require_account()
    boxes = await s.store.list_mailboxes(account.id)
    subs = await s.store.subscriptions(account.id)
    nodes = _tree(boxes, subs)
    ref = s.mailbox_name(cmd.reference) if cmd.reference else ""
    matchers = []
    for pattern in cmd.patterns:
        if pattern == "":
            continue
        matchers.append(names.list_matcher(ref, _pattern(s, pattern)))

    sub_only = "SUBSCRIBED" in cmd.selection
    special_only = "SPECIAL-USE" in cmd.selection
    recursive = "RECURSIVEMATCH" in cmd.selection
    want_subscribed = "SUBSCRIBED" in cmd.returns or sub_only

    for name in sorted(nodes, key=lambda n: (n != "INBOX", n)):
        node = nodes[name]
        if not any(m.fullmatch(name) for m in matchers):
            continue
        attrs: list[str] = []
        extra = b""
        if sub_only:
            if not node.subscribed:
                if recursive and _unlisted_subscribed_child(name, nodes, matchers):
                    extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
                else:
                    continue
        elif node.info is None and not _implied_parent_shown(name, nodes, matchers):
            continue
        if special_only and (node.info is None or not node.info.special_use):
            continue
        if node.info is None:
            if sub_only:
                attrs.append("\\NonExistent")
            else:
                attrs.append("\\NonExistent" if s.rev2 else "\\Noselect")
        if node.info is not None or node.has_children:
            attrs.append("\\HasChildren" if node.has_children else "\\HasNoChildren")
        if want_subscribed and node.subscribed:
            attrs.append("\\Subscribed")
        if node.info is not None and node.info.special_use:
            attrs.append(node.info.special_use)
        s.send(_line(s, node, attrs, extra))
        if cmd.status_items and node.info is not None:
            s.send(await status_line(s, node.info, cmd.status_items))
    return Reply(text="LIST completed")


@command(Lsub, AUTH)
async def lsub(s: Session, cmd: Lsub) -> Reply:
    if cmd.pattern == "":
        s.send(b'* LSUB (\\Noselect) "/" ""\r\n')
        return Reply(text="LSUB completed")
    account = s.require_account()
    boxes = {b.name: b for b in await s.store.list_mailboxes(account.id)}
    subs = set(await s.store.subscriptions(account.id))
    ref = s.mailbox_name(cmd.reference) if cmd.reference else ""
    matcher = names.list_matcher(ref, _pattern(s, cmd.pattern))
    seen: set[str] = set()
    out: list[tuple[str, bool]] = []
    for name in sorted(subs):
        if matcher.fullmatch(name):
            if name not in seen:
                seen.add(name)
                out.append((name, False))
            continue
        # '%' stops at a level: a subscribed child makes its matching parent
        # appear, \Noselect unless it is subscribed itself (RFC 3501 §6.3.9).
        for parent in names.parents(name):
            if parent not in subs and parent not in seen and matcher.fullmatch(parent):
                seen.add(parent)
                out.append((parent, True))
    for name, noselect in out:
        attrs = "\\Noselect" if noselect or name not in boxes else ""
        enc = astring(s.client_name(name))
        s.send(b"* LSUB (" + attrs.encode() + b') "/" ' + enc + b"\r\n")
    return Reply(text="LSUB completed")
