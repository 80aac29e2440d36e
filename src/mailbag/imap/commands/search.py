"""SEARCH and UID SEARCH (RFC 9051 §6.4.4, §7.3.4 ESEARCH responses),
ESEARCH return options (RFC 4731), SEARCHRES (RFC 5182), CONTEXT=SEARCH
UPDATE and PARTIAL (RFC 5267 §4; updates in imap/context.py), CONDSTORE MODSEQ
(RFC 7162 §3.1.5). Key evaluation lives in imap/search.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailbag.imap import context
from mailbag.imap.commands.sort import esearch_line, saved_result
from mailbag.imap.registry import SELECTED, CommandError, Reply, command
from mailbag.imap.search import SearchContext, search, search_with_modseq
from mailbag.imap.selected import compress_uids
from mailbag.wire.commands import (
    Search,
    SearchAnd,
    SearchKey,
    SearchModseq,
    SearchNot,
    SearchOr,
)

if TYPE_CHECKING:
    from mailbag.imap.session import Session

CHARSETS = {"UTF-8", "US-ASCII"}


def _uses_modseq(key: SearchKey) -> bool:
    if isinstance(key, SearchModseq):
        return True
    if isinstance(key, SearchNot):
        return _uses_modseq(key.key)
    if isinstance(key, SearchOr):
        return _uses_modseq(key.left) or _uses_modseq(key.right)
    if isinstance(key, SearchAnd):
        return any(_uses_modseq(k) for k in key.keys)
    return False


@command(Search, SELECTED, forbids_expunge=lambda cmd: not cmd.uid)
async def search_command(s: Session, cmd: Search) -> Reply:
    sel = s.require_selected()
    if cmd.charset is not None and cmd.charset.upper() not in CHARSETS:
        raise CommandError("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    ctx = SearchContext(
        mailbox_id=sel.info.id,
        uids=tuple(sel.uids),
        flags=sel.flags_map(),
        recent=frozenset(sel.recent),
        saved=sel.saved_search,
        now=datetime.now(UTC),
    )
    with_modseq = _uses_modseq(cmd.key)
    modseq: int | None = None
    if with_modseq:
        s.enabled.add("CONDSTORE")
        uids, modseq = await search_with_modseq(s.store, ctx, cmd.key)
    else:
        uids = await search(s.store, ctx, cmd.key)

    def ids(values: list[int]) -> list[int]:
        if cmd.uid:
            return values
        return sel.seqs_of(values)

    returns = cmd.returns
    if returns is None and s.rev2:
        returns = ("ALL",)
    if returns is None:
        line = b"* SEARCH" + b"".join(b" %d" % n for n in ids(uids))
        if with_modseq and uids and modseq is not None:
            line += b" (MODSEQ %d)" % modseq
        s.send(line + b"\r\n")
        return Reply(text="SEARCH completed")

    opts: set[str] = set[str](returns) - {"CONTEXT"}      # CONTEXT is only a hint (RFC 5267)
    update = "UPDATE" in opts
    opts.discard("UPDATE")
    if not opts and not update:
        opts = {"ALL"}
    if update:
        context.start(s, cmd.tag, cmd.uid, cmd.key, None, uids)
    if "SAVE" in opts:
        sel.saved_search = saved_result(uids, opts)
        opts.discard("SAVE")
        if not opts and not update:
            return Reply(text="SEARCH completed")
    s.send(esearch_line(cmd.tag, cmd.uid, opts, ids(uids), compress_uids, cmd.partial,
                        modseq if with_modseq else None))
    return Reply(text="SEARCH completed")

