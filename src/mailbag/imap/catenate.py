"""CATENATE (RFC 4469 §3): build an APPEND message from TEXT literals and
URLs naming messages or parts in the same account (RFC 5092 URLs; the
section is cut as FETCH BODY.PEEK[section]<partial> would cut it).

A URL that cannot be resolved answers NO [BADURL "url"] (RFC 4469 §6); a
URL of another user's mailbox is never followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote

from mailbag.imap import names
from mailbag.imap.registry import CommandError
from mailbag.mime.message import ParsedMessage
from mailbag.mime.sections import section_bytes
from mailbag.wire.commands import CatenatePart, CatenateText
from mailbag.wire.imapurl import BadUrl, MessageUrl, parse_message_url

if TYPE_CHECKING:
    from mailbag.imap.session import Session


def _bad_url(url: str) -> CommandError:
    # The URL goes back quoted; anything not printable is percent-encoded.
    safe = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else quote(c, safe="")
                   for c in url)
    return CommandError(f"Cannot resolve URL {safe}", f'BADURL "{safe}"')


async def resolve(s: Session, url: str) -> bytes:
    try:
        ref: MessageUrl = parse_message_url(url)
    except BadUrl:
        raise _bad_url(url) from None
    account = s.require_account()
    if ref.user is not None and ref.user != account.name:
        raise _bad_url(url)
    try:
        name = names.from_client(ref.mailbox, utf8=True)   # URLs carry UTF-8 names
    except names.BadName:
        raise _bad_url(url) from None
    info = await s.store.get_mailbox(account.id, name)
    if info is None or info.noselect:
        raise _bad_url(url)
    if ref.uidvalidity is not None and ref.uidvalidity != info.uidvalidity:
        raise _bad_url(url)
    records = await s.store.fetch_records(info.id, [ref.uid])
    if not records:
        raise _bad_url(url)
    raw = await s.store.read_blob(records[0].blob_id)
    data = section_bytes(raw, ParsedMessage.from_bytes(records[0].facts), ref.section)
    if data is None:
        raise _bad_url(url)
    if ref.partial is not None:
        start = ref.partial.start
        end = None if ref.partial.length is None else start + ref.partial.length
        data = data[start:end]
    return data


async def assemble(s: Session, parts: Sequence[CatenatePart]) -> bytes:
    """The message the CATENATE parts describe, in order."""
    chunks: list[bytes] = []
    for part in parts:
        if isinstance(part, CatenateText):
            chunks.append(part.data)
        else:
            chunks.append(await resolve(s, part.url))
    return b"".join(chunks)
