"""The in-process change feed: "mailbox M reached modseq N" (DESIGN.md rule 4).

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


class ChangeFeed:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

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
