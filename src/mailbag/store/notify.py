"""The in-process change feed: "mailbox M reached modseq N" (DESIGN.md rule 4),
and "the mailbox names or subscriptions of account A changed" (what IMAP
NOTIFY's MailboxName and SubscriptionChange events, RFC 5465 §5.4/§5.5, are
computed from: the listener re-reads the list and compares).

Backends call ``publish_threadsafe`` after a transaction commits; listeners run
on the event-loop thread and must be cheap (they wake IDLE sessions, which then
ask the store what changed). Events never carry data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Listener = Callable[[int, int], None]
NamesListener = Callable[[int], None]


class ChangeFeed:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._names: list[NamesListener] = []

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    def publish(self, events: Mapping[int, int]) -> None:
        """Call every listener for every (mailbox_id, modseq); on the loop thread."""
        # A copy: a listener may remove itself (a session ending IDLE).
        for listener in list(self._listeners):
            for mailbox_id, modseq in events.items():
                try:
                    listener(mailbox_id, modseq)
                except Exception:
                    log.exception("change listener failed")

    def publish_threadsafe(
        self, loop: asyncio.AbstractEventLoop | None, events: Mapping[int, int]
    ) -> None:
        if not events or loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self.publish, dict(events))
        except RuntimeError:
            # The loop closed between the check and the call: nobody to tell.
            pass

    def add_names(self, listener: NamesListener) -> None:
        self._names.append(listener)

    def remove_names(self, listener: NamesListener) -> None:
        try:
            self._names.remove(listener)
        except ValueError:
            pass

    def publish_names(self, account_id: int) -> None:
        """Call every names listener for *account_id*; on the loop thread.
        Called in the task of the command that made the change (listeners
        may use that to recognise a session's own change)."""
        for listener in list(self._names):
            try:
                listener(account_id)
            except Exception:
                log.exception("names listener failed")
