"""CANCELUPDATE (RFC 5267 §4.3): stop the result updates of SEARCH/SORT
RETURN (UPDATE) commands, named by their tags. The updates themselves are
in imap/context.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap import context
from mailbag.imap.registry import SELECTED, Reply, bad, command
from mailbag.wire.commands import CancelUpdate

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(CancelUpdate, SELECTED)
async def cancelupdate(s: Session, cmd: CancelUpdate) -> Reply:
    unknown = context.cancel(s, cmd.tags)
    if unknown:
        raise bad(f"No result updates for tag {unknown[0]}")
    return Reply(text="CANCELUPDATE completed")
