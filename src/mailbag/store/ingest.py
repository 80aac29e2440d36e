"""The one ingest path (DESIGN.md rule 2): parse a raw message once and
compute everything the store keeps beside its blob.

IMAP APPEND, LMTP, ``mailbag deliver`` and ``mailbag import`` all end in
``Store.append``, which runs ``prepare`` on a worker thread (parsing is CPU
work) and writes the blob before the database transaction that references it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbag.mime.facts import dump
from mailbag.mime.parse import parse_message
from mailbag.mime.text import field_texts, search_text
from mailbag.store.blobs import blob_id_of


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    raw: bytes
    blob_id: str                  # hex SHA-256 of raw
    size: int                     # RFC822.SIZE
    facts: bytes                  # facts.dump(rendered=False): without the three below
    envelope: bytes               # IMAP-rendered ENVELOPE, BODY, BODYSTRUCTURE
    body: bytes
    bodystructure: bytes
    sent_date: datetime | None
    search_headers: str           # casefolded, for case-insensitive SEARCH
    search_body: str              # casefolded
    search_fields: tuple[str, ...]  # mime.text.field_texts, casefolded
    inline: bytes | None = None   # compressed raw, when the store keeps it in its row


def prepare(raw: bytes) -> PreparedMessage:
    parsed = parse_message(raw)
    text = search_text(raw, parsed)
    return PreparedMessage(
        raw=raw,
        blob_id=blob_id_of(raw),
        size=len(raw),
        facts=dump(parsed, rendered=False),
        envelope=parsed.envelope,
        body=parsed.body,
        bodystructure=parsed.bodystructure,
        sent_date=parsed.sent_date,
        # Casefolded once here so SEARCH can compare with a plain substring test.
        search_headers=text.headers.casefold(),
        search_body=text.body.casefold(),
        search_fields=field_texts(parsed),
    )
