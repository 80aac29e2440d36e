"""One IMAP connection (RFC 9051 §2.2 client/server protocol, §3 states,
§5.5 multiple commands in progress, §7.1 server responses).

The session reads bytes, feeds the sans-IO parser, runs each command through
the registry and writes the responses. Between commands it turns store
changes into untagged responses (DESIGN.md rule 3 and 4); store change events
only mark the view dirty, so an idle connection costs no work until it is
woken.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailbag.imap import context, names
from mailbag.imap.fanout import Fanout
from mailbag.imap.registry import REGISTRY, CommandError, Reply, State
from mailbag.imap.selected import SelectedMailbox
from mailbag.log import log_event
from mailbag.store.api import Account, Changes, MailboxInfo, MessageMeta, Store, StoreError
from mailbag.store.index import IndexCache
from mailbag.wire.commands import (
    Append,
    AuthLine,
    Command,
    IdleDone,
    NeedContinuation,
    ProtocolError,
)
from mailbag.wire.parser import CommandParser, Limits

if TYPE_CHECKING:
    from mailbag.auth.authenticator import Authenticator
    from mailbag.config import Config
    from mailbag.imap.notify_state import NotifyState
    from mailbag.imap.transport import Connection

log = logging.getLogger("mailbag.imap")

FLUSH_AT = 64 * 1024
# Pipelined APPENDs run concurrently so that they share the store's group
# commits; this caps how many one connection may have in flight.
APPEND_WINDOW = 32


@dataclass
class ServerContext:
    """What every session of one server shares."""

    config: Config
    store: Store
    authenticator: Authenticator
    tls_context: ssl.SSLContext | None
    sessions: set[Session] = field(default_factory=set)
    shutting_down: bool = False
    indexes: IndexCache = field(init=False)
    fanout: Fanout = field(default_factory=Fanout)

    def __post_init__(self) -> None:
        self.indexes = IndexCache(self.store)


class Session:
    def __init__(
        self,
        ctx: ServerContext,
        reader: Connection,
        writer: Connection,
        tls_active: bool,
    ) -> None:
        from mailbag.imap.transport import Wake

        self.ctx = ctx
        self.store = ctx.store
        self.reader = reader
        self.writer = writer
        self.tls_active = tls_active
        peer = writer.get_extra_info("peername")
        self.remote_ip: str = peer[0] if isinstance(peer, tuple) else "local"
        limits = ctx.config.limits
        self.parser = CommandParser(
            Limits(max_line=limits.max_line, max_literal=limits.preauth_max_literal,
                   max_nonsync_literal=limits.nonsync_literal_max or None)
        )
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        # What the login used ("password", "scram", "oauth", "app:<id>"):
        # revoking an app password ends its sessions (auth/revocation.py).
        self.credential_id: str | None = None
        self._selected: SelectedMailbox | None = None
        self.heard = 0        # highest modseq the change feed announced for it
        self.enabled: set[str] = set()
        self.out: list[bytes] = []
        self.out_size = 0
        self.wake = Wake(reader)          # set when the selected mailbox changed
        # NOTIFY SET (imap/notify_state.py): changes are pushed between
        # commands too; None until the client asks.
        self.notify: NotifyState | None = None
        # The selected mailbox's events NOTIFY asked for (RFC 5465 §3.1,
        # §6.1): None until the first NOTIFY (RFC 9051 rules), else the
        # SELECTED/SELECTED-DELAYED group's events, empty for NOTIFY NONE
        # or a NOTIFY SET without such a group.
        self.selected_events: frozenset[str] | None = None
        self.closing = False
        self.busy = False
        self.inflight: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------- properties
    @property
    def selected(self) -> SelectedMailbox | None:
        return self._selected

    @selected.setter
    def selected(self, view: SelectedMailbox | None) -> None:
        # Store changes are heard per mailbox (MailboxIndex.watchers): only
        # for the selected one, so a change costs O(its sessions).
        old = self._selected
        if old is not None:
            old.index.watchers.discard(self.on_store_change)
        self._selected = view
        self.heard = 0
        if view is not None:
            view.index.watchers.add(self.on_store_change)

    @property
    def secure(self) -> bool:
        if self.tls_active:
            return True
        loopback = self.remote_ip in ("127.0.0.1", "::1") or self.remote_ip.startswith("127.")
        return loopback and self.ctx.config.secure_loopback

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def snapshot(self) -> bool:
        """The selected mailbox is a snapshot: NOTIFY asked for no message
        events there (RFC 5465 §3.1 "the same as specifying SELECTED NONE";
        §5 "NOTIFY SET ... NONE can be used as a snapshot facility"), so
        other sessions' changes wait, unsent and unapplied."""
        events = self.selected_events
        return events is not None and "MessageNew" not in events

    @property
    def flag_updates(self) -> bool:
        """Other sessions' flag changes in the selected mailbox are sent as
        FETCH (RFC 9051 §7.5.2); with NOTIFY only if SELECTED or
        SELECTED-DELAYED lists FlagChange (RFC 5465 §5, §5.1)."""
        events = self.selected_events
        return events is None or "FlagChange" in events

    def require_account(self) -> Account:
        if self.account is None:  # pragma: no cover - the registry checks state
            raise CommandError("Not authenticated")
        return self.account

    def require_selected(self) -> SelectedMailbox:
        if self.selected is None:  # pragma: no cover - the registry checks state
            raise CommandError("No mailbox selected")
        return self.selected

    # --------------------------------------------------------------- output
    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)

    async def flush(self) -> None:
        if self.out:
            self.writer.write(b"".join(self.out))
            self.out.clear()
            self.out_size = 0
        await self.writer.drain()

    async def maybe_flush(self) -> None:
        if self.out_size >= FLUSH_AT:
            await self.flush()

    def untagged_ok(self, text: str, code: str | None = None) -> None:
        c = f"[{code}] " if code else ""
        self.send(f"* OK {c}{text}\r\n".encode())

    # ------------------------------------------------------------ mailboxes
    def own_message_change(self, mailbox_id: int, modseq: int) -> None:
        """This session's APPEND/COPY/MOVE gave *mailbox_id* the modseq
        *modseq*: NOTIFY must not report it back as a STATUS (RFC 5465 §5)."""
        if self.notify is not None and modseq:
            self.notify.own_change(mailbox_id, modseq)

    def own_expunges(self, uids: Sequence[int]) -> None:
        """In a snapshot (``snapshot``) the messages this session's EXPUNGE
        or MOVE removed are still reported (RFC 9051 §6.4.3, RFC 6851 §3.3:
        they are the command's own responses, not events); everything else
        that changed stays waiting."""
        sel = self.selected
        if sel is None or not self.snapshot or not uids:
            return
        lines = self.apply_changes(Changes(sel.modseq, 0, (), tuple(uids)), allow_expunge=True)
        # The expunge's own modseq and whatever else is waiting are still
        # ahead of the view.
        sel.dirty = True
        for line in lines or ():
            self.send(line)

    async def own_changes(self, changed: Sequence[MessageMeta]) -> None:
        """Record flag changes this session made (and reports itself)."""
        sel = self.require_selected()
        if changed and not sel.own_changes(changed):
            await self.ctx.indexes.refresh(sel.index, upto=changed[0].modseq)

    def deselect(self) -> None:
        """Leave the selected mailbox (if any) without telling the client."""
        if self.selected is not None:
            self.ctx.indexes.release(self.selected.index)
            self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def mailbox_name(self, raw: str) -> str:
        try:
            return names.from_client(raw, self.utf8)
        except names.BadName as exc:
            raise CommandError(str(exc), "CANNOT") from exc

    def client_name(self, name: str) -> str:
        return names.to_client(name, self.utf8)

    async def find_mailbox(self, raw: str, code: str = "NONEXISTENT") -> MailboxInfo:
        name = self.mailbox_name(raw)
        info = await self.store.get_mailbox(self.require_account().id, name)
        if info is None or info.noselect:
            raise CommandError(f"Mailbox does not exist: {raw}", code)
        return info

    def on_store_change(self, mailbox_id: int, modseq: int) -> None:
        sel = self.selected
        if sel is not None and sel.info.id == mailbox_id and modseq > sel.modseq:
            sel.dirty = True
            self.heard = max(self.heard, modseq)
            self.wake.set()

    async def sync_updates(self, allow_expunge: bool = True, force: bool = False,
                           implicit_noop: bool = False) -> None:
        """Send what changed in the selected mailbox since the client was
        told. *implicit_noop*: NOTIFY SET's (RFC 5465 §3.1), which returns
        "any accumulated changes ..., such as flag changes and new or
        expunged messages", whatever NOTIFY asked for before or asks now."""
        sel = self.selected
        if sel is None or not (sel.dirty or force):
            return
        if self.snapshot and not implicit_noop:
            # RFC 5465 §3.1: no message events for the selected mailbox,
            # not even at the end of a command; they stay accumulated for
            # the implicit NOOP of a later NOTIFY SET.
            return
        # Shared with every session asking from the same modseq (IDLE fan-out).
        changes = await self.ctx.indexes.changes_since(sel.index, sel.modseq)
        # FETCH FLAGS reads the shared index: it must be at least as current
        # as what the client is about to be told (and know new UIDs before
        # they are claimed as \Recent).
        await self.ctx.indexes.refresh(sel.index, upto=changes.highestmodseq)
        lines = self.apply_changes(changes, allow_expunge, flags=implicit_noop or None)
        if lines is None:
            return
        for line in lines + await context.after_apply(self):
            self.send(line)

    def apply_changes(self, changes: Changes, allow_expunge: bool,
                      flags: bool | None = None) -> list[bytes] | None:
        """The synchronous part of sync_updates: fold *changes* into the
        view and return the untagged responses (None: must wait). *flags*:
        send other sessions' flag changes (default: ``flag_updates``)."""
        sel = self.require_selected()
        if not sel.readonly and sel.recent_from is None and sel.has_new(changes):
            sel.recent_from = sel.index.claim_recent()
        # RFC 5267 §4.4: REMOVEFROM for expunged results goes before the
        # EXPUNGEs, while their sequence numbers still hold.
        removals = context.before_apply(self, changes, allow_expunge)
        # A flag change FETCH under NOTIFY carries UID (RFC 5465 §5.1 "MUST
        # include UID and FLAGS"), as under QRESYNC (RFC 7162 §3.2.4).
        lines = sel.apply(changes, allow_expunge, self.condstore, self.qresync,
                          flags=self.flag_updates if flags is None else flags,
                          uid_item=self.qresync or self.selected_events is not None)
        if lines is None:
            sel.dirty = True
            return None
        if self.heard > sel.modseq:
            sel.dirty = True     # announced while the shared answer was on its way
        return removals + lines

    # ----------------------------------------------------------------- loop
    async def run(self) -> None:
        self.ctx.sessions.add(self)
        try:
            from mailbag.imap.capabilities import capability_string

            if self.ctx.shutting_down:
                self.send(b"* BYE Server shutting down\r\n")
            else:
                self.send(f"* OK [CAPABILITY {capability_string(self)}] mailbag ready\r\n".encode())
            await self.flush()
            await self.loop()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            for task in self.inflight:
                task.cancel()
            if self.notify is not None:
                self.notify.close()
            self.ctx.sessions.discard(self)
            self.deselect()
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - best effort on a dying transport
                pass

    async def read_more(self) -> bool:
        if self.notify is not None:
            from mailbag.imap.notify_state import read_notifying

            return await read_notifying(self)
        cfg = self.ctx.config.limits
        timeout = cfg.preauth_timeout if self.state is State.NOT_AUTHENTICATED else cfg.idle_timeout
        try:
            data = await self.reader.read_within(65536, timeout)
        except TimeoutError:
            self.send(b"* BYE Autologout; idle for too long\r\n")
            await self.flush()
            return False
        if not data:
            return False
        self.parser.feed(data)
        return True

    async def loop(self) -> None:
        while not self.closing:
            event = self.parser.next_event()
            if event is None:
                if not await self.read_more():
                    return
                continue
            if isinstance(event, NeedContinuation):
                self.send(b"+ Ready for literal data\r\n")
                await self.flush()
                continue
            if isinstance(event, ProtocolError):
                await self.protocol_error(event)
                continue
            if isinstance(event, (AuthLine, IdleDone)):
                # Only valid inside AUTHENTICATE/IDLE, which read their own lines.
                self.send(b"* BAD Unexpected continuation line\r\n")
                await self.flush()
                continue
            if isinstance(event, Append) and self.state is not State.NOT_AUTHENTICATED:
                task = asyncio.ensure_future(self.execute(event))
                self.inflight.add(task)
                task.add_done_callback(self._append_done)
                if len(self.inflight) >= APPEND_WINDOW:
                    await asyncio.wait(self.inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            await self.drain_inflight()
            await self.execute(event)
            if self.ctx.shutting_down and not self.closing:
                self.send(b"* BYE Server shutting down\r\n")
                await self.flush()
                return

    def _append_done(self, task: asyncio.Task[None]) -> None:
        self.inflight.discard(task)
        if self.notify is not None and not self.inflight:
            # NOTIFY delivery waits while APPENDs are in flight
            # (read_notifying); what arrived meanwhile goes out now, not at
            # the next change.
            self.reader.poke()

    async def drain_inflight(self) -> None:
        """Every other command waits for pipelined APPENDs: their effects
        (EXISTS, APPENDUID) must be visible to what follows them."""
        if self.inflight:
            await asyncio.gather(*list(self.inflight))

    async def protocol_error(self, err: ProtocolError) -> None:
        code = f"[{err.code}] " if err.code else ""
        tag = err.tag or "*"
        self.send(f"{tag} {err.status} {code}{err.message}\r\n".encode())
        if err.fatal:
            self.send(b"* BYE Too many protocol errors\r\n")
            self.closing = True
        await self.flush()

    async def execute(self, cmd: Command) -> None:
        entry = REGISTRY.get(type(cmd))
        if entry is None:
            reply = Reply("BAD", "Command not implemented")
        elif self.state not in entry.states:
            reply = Reply("BAD", f"Command not valid in {self.state.value} state")
        else:
            self.busy = True
            try:
                reply = await entry.handler(self, cmd)
            except CommandError as exc:
                reply = exc.reply
            except StoreError as exc:
                reply = Reply("NO", str(exc) or type(exc).__name__, exc.code)
            except names.BadName as exc:
                reply = Reply("NO", str(exc), "CANNOT")
            except (ConnectionError, ssl.SSLError):
                raise
            except Exception:
                log.exception("command failed: %s", type(cmd).__name__)
                reply = Reply("NO", "Internal error; the command was not completed", "SERVERBUG")
            finally:
                self.busy = False
            if self.selected is not None and reply.status != "BAD" and self.state is State.SELECTED:
                try:
                    await self.sync_updates(allow_expunge=not entry.forbids_expunge(cmd))
                except StoreError:
                    pass
        if self.state is State.LOGOUT:
            self.closing = True
        if not reply.answered:
            code = f"[{reply.code}] " if reply.code else ""
            self.send(f"{cmd.tag} {reply.status} {code}{reply.text}\r\n".encode())
        await self.flush()

    # ------------------------------------------------------------ raw lines
    async def read_auth_line(self) -> bytes | None:
        """The client's next SASL response line (RFC 9051 §6.2.2)."""
        self.parser.expect_auth_line()
        while True:
            event = self.parser.next_event()
            if event is None:
                if not await self.read_more():
                    return None
                continue
            if isinstance(event, AuthLine):
                return event.data
            if isinstance(event, ProtocolError):
                return None
            # A command while waiting for an auth line: treat as cancel.
            return None

    async def start_tls(self) -> None:
        assert self.ctx.tls_context is not None
        # Anything the client pipelined after STARTTLS was sent in clear text
        # and must not be executed as if it came over TLS (RFC 9051 §6.2.1).
        self.parser.discard_buffer()
        await self.writer.start_tls(self.ctx.tls_context)
        self.tls_active = True

    def after_login(self, account: Account) -> None:
        self.account = account
        self.state = State.AUTHENTICATED
        limits = self.ctx.config.limits
        self.parser.limits = Limits(max_line=limits.max_line, max_literal=limits.max_literal,
                                    max_nonsync_literal=limits.nonsync_literal_max or None)
        log_event(log, "login", user=account.name, rip=self.remote_ip,
                  tls="yes" if self.tls_active else "no")

    def b64(self, data: bytes) -> bytes:
        return base64.b64encode(data)
