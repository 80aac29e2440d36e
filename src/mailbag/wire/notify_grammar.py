"""Grammar of NOTIFY (RFC 5465 §3.1, §5, §6 and §8 "notify"): the parser,
plus the composition rules §5 and §6.1 answer with a tagged BAD:

- MessageNew and MessageExpunge only together; FlagChange and
  AnnotationChange only with both of them (§5);
- one SELECTED / SELECTED-DELAYED group at most, holding message events
  only (§6.1);
- MessageNew fetch attributes only for SELECTED / SELECTED-DELAYED (§5.2).

Event names the server does not support are *not* a syntax error (§3.1:
"MUST refuse the command with a tagged NO"); they are kept and the session
answers NO [BADEVENT].
"""

from __future__ import annotations

from typing import cast

from mailbag.wire.commands import Notify, NotifyEvent, NotifyFilter, NotifyGroup
from mailbag.wire.fetch_grammar import parse_fetch_items
from mailbag.wire.lexer import ParseError, Reader

MESSAGE_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange")
OTHER_EVENTS = ("MailboxName", "SubscriptionChange", "MailboxMetadataChange",
                "ServerMetadataChange")
_KNOWN = {n.upper(): n for n in MESSAGE_EVENTS + OTHER_EVENTS}
_FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED",
                      "SUBTREE", "MAILBOXES"})
# Bounds what one command can make the server watch (names across groups).
MAX_GROUPS = 64


def parse_notify(r: Reader, tag: str) -> Notify:
    r.sp("a space after NOTIFY")
    verb = r.keyword("SET or NONE")
    if verb == "NONE":
        r.end("NOTIFY")
        return Notify(tag, None)
    if verb != "SET":
        raise ParseError(f"NOTIFY: expected SET or NONE, found {verb}")
    r.sp("a space after NOTIFY SET")
    status = False
    if r.peek() != 0x28:
        if r.keyword("STATUS or an event group") != "STATUS":
            raise ParseError("NOTIFY SET: expected STATUS or '(' starting an event group")
        status = True
        r.sp("a space after STATUS")
    groups = [_group(r)]
    while r.peek() == 0x20:
        r.pos += 1
        if len(groups) >= MAX_GROUPS:
            raise ParseError("NOTIFY: too many event groups", code="LIMIT")
        groups.append(_group(r))
    r.end("NOTIFY")
    _check(groups)
    return Notify(tag, tuple(groups), status)


def _group(r: Reader) -> NotifyGroup:
    r.expect(b"(", "'(' starting an event group")
    word = r.keyword("a mailbox filter")
    if word not in _FILTERS:
        raise ParseError(f"NOTIFY: unknown mailbox filter {word}")
    mailboxes: list[str] = []
    if word in ("SUBTREE", "MAILBOXES"):
        r.sp(f"a space after {word}")
        if r.peek() == 0x28:
            r.pos += 1
            mailboxes.append(r.mailbox())
            while r.peek() == 0x20:
                r.pos += 1
                mailboxes.append(r.mailbox())
            r.expect(b")", "')' closing the mailbox list")
        else:
            mailboxes.append(r.mailbox())
    r.sp("a space before the events")
    events: list[NotifyEvent] = []
    if r.peek() == 0x28:
        r.pos += 1
        events.append(_event(r))
        while r.peek() == 0x20:
            r.pos += 1
            events.append(_event(r))
        r.expect(b")", "')' closing the event list")
    elif r.keyword("'(' starting the events, or NONE") != "NONE":
        raise ParseError("NOTIFY: expected an event list or NONE")
    r.expect(b")", "')' closing the event group")
    return NotifyGroup(cast(NotifyFilter, word), tuple(mailboxes), tuple(events))


def _event(r: Reader) -> NotifyEvent:
    raw = r.atom("an event name").decode("ascii")
    name = _KNOWN.get(raw.upper(), raw)
    if name == "MessageNew" and r.peek() == 0x20 and r.peek(1) == 0x28:
        r.pos += 1
        items, _ = parse_fetch_items(r)
        return NotifyEvent(name, items)
    return NotifyEvent(name)


def _check(groups: list[NotifyGroup]) -> None:
    selected = [g for g in groups if g.filter in ("SELECTED", "SELECTED-DELAYED")]
    if len(selected) > 1:
        raise ParseError("NOTIFY: only one SELECTED or SELECTED-DELAYED group is allowed")
    for g in groups:
        names = {e.name for e in g.events}
        if g.filter in ("SELECTED", "SELECTED-DELAYED"):
            other = sorted(names & set(OTHER_EVENTS))
            if other:
                raise ParseError(f"NOTIFY: {other[0]} cannot be used with {g.filter}")
        elif any(e.fetch for e in g.events):
            raise ParseError("NOTIFY: MessageNew fetch attributes need SELECTED")
        if ("MessageNew" in names) != ("MessageExpunge" in names):
            raise ParseError("NOTIFY: MessageNew and MessageExpunge go together")
        if names & {"FlagChange", "AnnotationChange"} and "MessageNew" not in names:
            raise ParseError("NOTIFY: FlagChange and AnnotationChange need "
                             "MessageNew and MessageExpunge")
