"""The NOTIFY state of a session and the process-wide hub that feeds it
(RFC 5465 §3.1 NOTIFY SET/NONE, §4 IDLE, §5.1-§5.5 events, §6 mailbox
filters).

How it is wired (no polling anywhere):

- ``Hub`` (one per store) listens to the store's change feed. Message events
  ("mailbox M reached modseq N") reach only the sessions that watch M, via a
  dict lookup; names events ("account A's mailbox names or subscriptions
  changed") reach the NOTIFY sessions of A. Either marks the session's state
  and pokes its connection (transport.Connection.poke), which ends the
  session's ``read_or_wake`` wait.
- A notifying session reads its next command with ``read_notifying`` (the
  read_or_wake of IDLE, with the session's autologout deadline): woken
  between commands, it sends STATUS for changed non-selected mailboxes, LIST
  for name and subscription changes (computed by comparing the mailbox list
  with the one it last saw, by mailbox id, so renames give OLDNAME and
  changes made by other processes are seen too), and the usual
  EXISTS/EXPUNGE/FETCH for the selected mailbox when a SELECTED group asks
  for message events. EXPUNGE goes out between commands only for SELECTED,
  never for SELECTED-DELAYED (§6.1.2); during a command the session's usual
  end-of-command update applies its rules (no EXPUNGE after FETCH, STORE or
  SEARCH by sequence number, RFC 9051 §7.5.1).
- Own changes. RFC 5465 §5: "The server SHOULD omit notifying the client
  if the event is caused by this client." A mailbox name change made by
  this session's own command is not reported to it; the store announces it
  in the task of the command that made it, which is how the hub recognises
  it. Message changes are committed by the writer thread and announced
  later, so there the session's APPEND, COPY and MOVE note the modseq their
  one store job gave the destination (``own_change``; a job bumps a
  mailbox's modseq exactly once). A followed mailbox whose every modseq
  since the last STATUS is one of those gets no STATUS; one other modseq
  in between (another session's change, whenever it landed) and the STATUS
  goes out, own changes included: a redundant STATUS, never a lost one.
- The selected mailbox (§3.1, §5, §6.1): "If the SELECTED/SELECTED-DELAYED
  mailbox selector is not specified in the NOTIFY SET command, this means
  that the client doesn't want to receive any <message-event>s for the
  currently selected mailbox. This is the same as specifying SELECTED
  NONE", and "NOTIFY NONE specifies that the client is not interested in
  any kind of event happening on the server". Session.selected_events keeps
  what the client asked for; without MessageNew/MessageExpunge the view is
  a snapshot ("NOTIFY SET ... NONE can be used as a snapshot facility",
  §5): no EXISTS, EXPUNGE or FETCH for other sessions' changes, not even at
  the end of a command; a later NOTIFY SET ("implies an implicit NOOP
  command", §3.1) returns what accumulated, a new SELECT takes a fresh
  snapshot. Without FlagChange (§5: "The
  client can instruct the server not to send an event by omitting the
  necessary event"), other sessions' flag changes give no FETCH; with it,
  that FETCH carries UID (§5.1: "MUST include UID and FLAGS").
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.imap import names
from mailbag.imap.registry import CommandError, State
from mailbag.store.api import SEPARATOR, MailboxInfo, Store
from mailbag.wire.commands import Fetch, NotifyGroup, SeqRange, SequenceSet
from mailbag.wire.values import astring

if TYPE_CHECKING:
    from mailbag.imap.session import Session

log = logging.getLogger("mailbag.imap")

# Events mailbag supports; the BADEVENT response code lists them (§3.1).
SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange")
MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})
SELECTED_FILTERS = ("SELECTED", "SELECTED-DELAYED")
# More non-selected mailboxes than this in one NOTIFY: NO [NOTIFICATIONOVERFLOW].
MAX_WATCHED = 1000
# Own modseqs kept per followed mailbox; beyond this (a mailbox the session
# keeps appending to while it is selected) they are forgotten, which costs
# at most one redundant STATUS.
MAX_OWN = 1000


@dataclass(slots=True, eq=False)
class Watch:
    """A non-selected mailbox whose message events a session follows."""

    name: str
    events: frozenset[str]
    last: tuple[int, int, int, int]   # MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ told
    # Modseqs above last[3] that this session's own commands made (§5).
    own: set[int] = field(default_factory=set)


def _counts(info: MailboxInfo) -> tuple[int, int, int, int]:
    return (info.messages, info.uidnext, info.uidvalidity, info.highestmodseq)


class Hub:
    """The store listeners shared by every NOTIFY session of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.by_mailbox: dict[int, set[NotifyState]] = {}
        self.by_account: dict[int, set[NotifyState]] = {}
        store.add_listener(self._on_change)
        store.add_names_listener(self._on_names)

    def _on_change(self, mailbox_id: int, modseq: int) -> None:
        for st in self.by_mailbox.get(mailbox_id, ()):
            st.pending.add(mailbox_id)
            st.poke()

    def _on_names(self, account_id: int) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        for st in self.by_account.get(account_id, ()):
            if task is not None and st.task is task:
                st.own_names = True
            else:
                st.names_dirty = True
                st.poke()

    def follow_account(self, st: NotifyState, account_id: int) -> None:
        self.by_account.setdefault(account_id, set()).add(st)
        self.store.watch_names(account_id)

    def unfollow_account(self, st: NotifyState, account_id: int) -> None:
        group = self.by_account.get(account_id)
        if group is not None and st in group:
            group.discard(st)
            if not group:
                del self.by_account[account_id]
            self.store.unwatch_names(account_id)

    def set_mailboxes(self, st: NotifyState, new: dict[int, int]) -> None:
        """Make *st* follow exactly the mailboxes of *new* (id -> modseq)."""
        for mid in st.followed - new.keys():
            group = self.by_mailbox.get(mid)
            if group is not None:
                group.discard(st)
                if not group:
                    del self.by_mailbox[mid]
            self.store.unwatch_mailbox(mid)
        for mid, modseq in new.items():
            if mid not in st.followed:
                self.by_mailbox.setdefault(mid, set()).add(st)
                self.store.watch_mailbox(mid, modseq)
        st.followed = set(new)


_hubs: weakref.WeakKeyDictionary[object, Hub] = weakref.WeakKeyDictionary()


def hub_for(store: Store) -> Hub:
    hub = _hubs.get(store)
    if hub is None:
        hub = _hubs[store] = Hub(store)
    return hub


class NotifyState:
    """What one session asked NOTIFY SET for, and what it was last told."""

    def __init__(self, hub: Hub, session: Session, groups: tuple[NotifyGroup, ...]) -> None:
        self.hub = hub
        self.session = session
        self.account_id = session.require_account().id
        self.task = asyncio.current_task()
        self.groups = groups
        self.selected = next((g for g in groups if g.filter in SELECTED_FILTERS), None)
        self.selected_events = frozenset(
            e.name for e in self.selected.events) if self.selected else frozenset()
        self.selected_fetch = next(
            (e.fetch for e in self.selected.events if e.name == "MessageNew" and e.fetch),
            ()) if self.selected else ()
        self.others = [g for g in groups if g.filter not in SELECTED_FILTERS]
        self.name_events = frozenset(
            e.name for g in self.others for e in g.events) & {"MailboxName", "SubscriptionChange"}
        self.watches: dict[int, Watch] = {}
        self.followed: set[int] = set()
        self.pending: set[int] = set()
        self.names_dirty = False
        self.own_names = False
        self.boxes: dict[int, tuple[str, bool]] = {}    # id -> (name, noselect)
        self.subs: set[str] = set()
        self.deferred = -1      # s.heard when a selected update last had to wait
        self.closed = False
        # Filter names in the store's spelling; a name no mailbox can have
        # matches nothing (it is not an error, §6.6).
        self._names: list[tuple[NotifyGroup, list[str]]] = []
        for g in self.others:
            converted = []
            for raw in g.mailboxes:
                try:
                    converted.append(names.from_client(raw, session.utf8))
                except names.BadName:
                    pass
            self._names.append((g, converted))

    # ------------------------------------------------------------ matching
    def _group_of(self, name: str) -> NotifyGroup | None:
        """The first non-selected group whose filter covers *name* (§6)."""
        for g, wanted in self._names:
            if g.filter in ("PERSONAL", "INBOXES"):
                # Every mailbox can receive mail here (plus-addressing into
                # folders), so "inboxes" is "personal" (§6.3).
                return g
            if g.filter == "SUBSCRIBED" and name in self.subs:
                return g
            if g.filter == "MAILBOXES" and name in wanted:
                return g
            if g.filter == "SUBTREE" and any(
                    name == w or name.startswith(w + SEPARATOR) for w in wanted):
                return g
        return None

    def _events_for(self, name: str) -> frozenset[str]:
        g = self._group_of(name)
        return frozenset(e.name for e in g.events) if g is not None else frozenset()

    # ------------------------------------------------------------ lifecycle
    def poke(self) -> None:
        self.session.reader.poke()

    async def start(self, s: Session) -> list[MailboxInfo]:
        """Read the mailbox list and follow what the groups name; return the
        followed mailboxes (for NOTIFY SET STATUS). NOTIFICATIONOVERFLOW
        when there are too many."""
        infos = await self._load(s)
        if len(infos) > MAX_WATCHED:
            raise CommandError(f"NOTIFY would follow {len(infos)} mailboxes; at most "
                               f"{MAX_WATCHED}", "NOTIFICATIONOVERFLOW")
        self.hub.follow_account(self, self.account_id)
        self._follow(infos)
        return infos

    async def _load(self, s: Session) -> list[MailboxInfo]:
        boxes = await s.store.list_mailboxes(self.account_id)
        self.subs = set(await s.store.subscriptions(self.account_id))
        self.boxes = {b.id: (b.name, b.noselect) for b in boxes}
        return [b for b in boxes if not b.noselect
                and self._events_for(b.name) & MESSAGE_EVENTS]

    def _follow(self, infos: list[MailboxInfo]) -> None:
        old = self.watches
        self.watches = {}
        for info in infos:
            prev = old.get(info.id)
            if prev is not None and prev.last[2] == info.uidvalidity:
                # What the client was told, and which changes were its own,
                # outlive a re-read of the names (any names event does one).
                self.watches[info.id] = Watch(info.name, self._events_for(info.name),
                                              prev.last, prev.own)
            else:
                self.watches[info.id] = Watch(info.name, self._events_for(info.name),
                                              _counts(info))
        self.hub.set_mailboxes(self, {i.id: i.highestmodseq for i in infos})

    def own_change(self, mailbox_id: int, modseq: int) -> None:
        """This session's own command gave *mailbox_id* the modseq *modseq*
        (APPEND, COPY, MOVE): not to be reported back to it (§5)."""
        w = self.watches.get(mailbox_id)
        if w is None or modseq <= w.last[3]:
            return
        if len(w.own) >= MAX_OWN:
            w.own.clear()
        w.own.add(modseq)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.hub.set_mailboxes(self, {})
        self.hub.unfollow_account(self, self.account_id)

    # ------------------------------------------------------------ delivery
    def has_pending(self, s: Session, idle: bool = False) -> bool:
        if self.pending or self.names_dirty or self.own_names:
            return True
        return self._selected_due(s, idle)

    def _selected_due(self, s: Session, idle: bool) -> bool:
        # In IDLE the per-mailbox batch (commands/idle.py) tells the
        # selected mailbox's changes, except to sessions that want FETCH
        # attributes for new messages: those it wakes to do it here.
        sel = s.selected
        return (sel is not None and bool(self.selected_events & MESSAGE_EVENTS)
                and (not idle or bool(self.selected_fetch))
                and sel.dirty and s.heard > self.deferred)

    async def deliver(self, s: Session, idle: bool = False) -> None:
        """Send what changed since the client was last told: between
        commands, or in IDLE (*idle*), where EXPUNGE may go out also for
        SELECTED-DELAYED (§6.1.2)."""
        if self.names_dirty or self.own_names:
            report = self.names_dirty
            self.names_dirty = self.own_names = False
            old_boxes, old_subs = self.boxes, self.subs
            infos = await self._load(s)
            self._follow(infos[:MAX_WATCHED])
            if report and self.name_events:
                self._send_names(s, old_boxes, old_subs)
        pending, self.pending = self.pending, set()
        sel = s.selected
        for mid in sorted(pending):
            w = self.watches.get(mid)
            if w is None or (sel is not None and sel.info.id == mid):
                continue   # the selected mailbox is reported as such (§6.1)
            info = await s.store.get_mailbox(self.account_id, w.name)
            if info is None or info.id != mid:
                continue   # renamed or deleted meanwhile: a names event follows
            await self._status(s, w, info)
        if self._selected_due(s, idle):
            await self._selected(s, idle or (self.selected is not None
                                           and self.selected.filter == "SELECTED"))

    async def _status(self, s: Session, w: Watch, info: MailboxInfo) -> None:
        """STATUS for a non-selected mailbox (§5.1-§5.3): message counts for
        MessageNew/MessageExpunge, HIGHESTMODSEQ for FlagChange."""
        now = _counts(info)
        # Every modseq since the last STATUS made by this session's own
        # commands: nothing to tell (§5 SHOULD). One job, one modseq, so a
        # count of the own ones in the range is exact.
        own = sum(1 for m in w.own if w.last[3] < m <= now[3])
        mine = now[2] == w.last[2] and now[3] > w.last[3] and own == now[3] - w.last[3]
        w.own = {m for m in w.own if m > now[3]}
        messages = "MessageNew" in w.events and now[:3] != w.last[:3]
        flags = "FlagChange" in w.events and now[3] != w.last[3]
        w.last = now
        if (messages or flags) and not mine:
            s.send(await status_for(s, info, w.events))

    async def _selected(self, s: Session, allow_expunge: bool) -> None:
        sel = s.selected
        assert sel is not None
        before = sel.uids[-1] if sel.uids else 0
        await s.sync_updates(allow_expunge=allow_expunge)
        if sel.dirty:
            self.deferred = s.heard    # an EXPUNGE must wait: until more happens
        if not self.selected_fetch or s.selected is not sel:
            return
        new = sel.uids[bisect_right(sel.uids, before):]
        if not new:
            return
        # MessageNew (fetch-att ...): the new messages' FETCH after EXISTS
        # (§5.2), by UID so that it holds whatever happens meanwhile.
        from mailbag.imap.commands.fetch import fetch

        cmd = Fetch("*", True, SequenceSet((SeqRange(new[0], new[-1]),)), self.selected_fetch)
        try:
            await fetch(s, cmd)
        except CommandError as exc:
            log.debug("notify fetch failed: %s", exc)

    def _send_names(self, s: Session, old_boxes: dict[int, tuple[str, bool]],
                    old_subs: set[str]) -> None:
        """LIST for every mailbox created, deleted or renamed (§5.4) and
        every subscription change (§5.5) since the last look."""
        live = {name for name, noselect in self.boxes.values() if not noselect}
        lines: list[bytes] = []
        if "MailboxName" in self.name_events:
            for mid, (name, noselect) in self.boxes.items():
                old = old_boxes.get(mid)
                was_live = old is not None and not old[1]
                if noselect:
                    if was_live:
                        lines.append(self._list(s, old[0] if old else name, live,
                                                gone=True))
                    continue
                if not was_live:
                    if "MailboxName" in self._events_for(name):
                        lines.append(self._list(s, name, live))
                elif old is not None and old[0] != name and (
                        "MailboxName" in self._events_for(name)
                        or "MailboxName" in self._events_for(old[0])):
                    lines.append(self._list(s, name, live, oldname=old[0]))
            for mid, (name, noselect) in old_boxes.items():
                if mid not in self.boxes and not noselect \
                        and "MailboxName" in self._events_for(name):
                    lines.append(self._list(s, name, live, gone=True))
        if "SubscriptionChange" in self.name_events:
            for name in sorted(old_subs ^ self.subs):
                if "SubscriptionChange" in self._events_for(name) or (
                        name in old_subs and any(g.filter == "SUBSCRIBED" and any(
                            e.name == "SubscriptionChange" for e in g.events)
                            for g in self.others)):
                    lines.append(self._list(s, name, live, gone=name not in live))
        for line in lines:
            s.send(line)

    def _list(self, s: Session, name: str, live: set[str], gone: bool = False,
              oldname: str | None = None) -> bytes:
        attrs: list[str] = []
        if gone:
            attrs.append("\\NonExistent")
        else:
            prefix = name + SEPARATOR
            attrs.append("\\HasChildren" if any(n.startswith(prefix) for n in live)
                         else "\\HasNoChildren")
        if name in self.subs:
            attrs.append("\\Subscribed")
        line = (b"* LIST (" + " ".join(attrs).encode() + b') "/" '
                + astring(s.client_name(name)))
        if oldname is not None:
            line += b' ("OLDNAME" (' + astring(s.client_name(oldname)) + b"))"
        return line + b"\r\n"


async def status_for(s: Session, info: MailboxInfo, events: frozenset[str]) -> bytes:
    from mailbag.imap.commands.mailboxes import status_line

    items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    if "FlagChange" in events or s.condstore:
        items.append("HIGHESTMODSEQ")
    return await status_line(s, info, tuple(items))


def stop(s: Session) -> None:
    """NOTIFY NONE, or the session ends."""
    if s.notify is not None:
        s.notify.close()
        s.notify = None


async def read_notifying(s: Session) -> bool:
    """Session.read_more for a session with NOTIFY set: wait for the next
    bytes of a command *or* a change (transport read_or_wake), and send the
    change while no command is in progress. False: the connection is done."""
    loop = asyncio.get_running_loop()
    limits = s.ctx.config.limits
    deadline = loop.time() + limits.idle_timeout
    while True:
        st = s.notify
        if st is None:       # NOTIFY NONE cannot run while this waits; be safe
            return await s.read_more()
        if (st.has_pending(s) and s.parser.between_commands and not s.busy
                and not s.inflight and s.state is not State.LOGOUT):
            try:
                await st.deliver(s)
            except Exception:  # noqa: BLE001 - a notification must not end the session
                log.exception("notify delivery failed")
                st.pending.clear()
                st.names_dirty = st.own_names = False
            await s.flush()
            continue
        if loop.time() >= deadline:
            s.send(b"* BYE Autologout; idle for too long\r\n")
            await s.flush()
            return False
        timer = loop.call_at(deadline, s.reader.poke)
        try:
            data = await s.reader.read_or_wake(65536)
        finally:
            timer.cancel()
        if data is None:
            continue
        if not data:
            return False
        s.parser.feed(data)
        return True
