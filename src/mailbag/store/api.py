"""The storage API every backend implements (DESIGN.md "store/").

The store knows accounts, mailboxes and UIDs, never sequence numbers. Every
change to a mailbox (append, flag change, expunge) bumps its modseq and is
recorded, so a session can ask "what changed since modseq N" (RFC 7162 §3 model,
used for NOOP/IDLE updates as well as CONDSTORE/QRESYNC). Message bodies are
immutable content-addressed blobs; the parsed facts (mime.ParsedMessage) are
stored with each message at ingest.

Every mutating call returns only after its transaction is durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

INBOX = "INBOX"
SEPARATOR = "/"

# Created for every new account: (name, special-use attribute or None).
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


class StoreError(Exception):
    """Base of the errors a store reports; ``code`` is an IMAP response code."""

    code: str | None = None


class NotFound(StoreError):
    code = "NONEXISTENT"


class AlreadyExists(StoreError):
    code = "ALREADYEXISTS"


class NotAllowed(StoreError):
    """E.g. deleting INBOX, renaming to a child of itself."""

    code = "CANNOT"


class HasChildren(StoreError):
    code = "INUSE"


class OverQuota(StoreError):
    code = "OVERQUOTA"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    password_hash: str
    quota_bytes: int | None = None
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    id: int
    account_id: int
    name: str                     # full name, "/"-separated, INBOX is "INBOX"
    special_use: str | None       # "\\Drafts" ...
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: int
    unseen: int
    deleted: int
    size: int                     # sum of RFC822.SIZE
    noselect: bool = False        # a placeholder parent kept for its children
    first_recent: int = 1         # lowest UID no session has selected yet (\Recent)
    recent: int = 0               # messages at or above first_recent


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What a session needs to know about every message in its view."""

    uid: int
    flags: frozenset[str]         # system flags ("\\Seen") and keywords, as given
    modseq: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message in one mailbox, with everything FETCH and SEARCH read."""

    uid: int
    flags: frozenset[str]
    modseq: int
    size: int                     # RFC822.SIZE: bytes of the raw message
    internaldate: datetime        # timezone-aware
    savedate: datetime            # when it entered this mailbox (RFC 8514)
    blob_id: str                  # hex SHA-256 of the raw message (EMAILID source)
    facts: bytes                  # mime.ParsedMessage.to_bytes() from ingest


@dataclass(frozen=True, slots=True)
class AppendItem:
    data: bytes
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None   # None: now


@dataclass(frozen=True, slots=True)
class AppendResult:
    uidvalidity: int
    uids: tuple[int, ...]
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int              # of the destination
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoreResult:
    changed: tuple[MessageMeta, ...]       # messages whose flags really changed
    unchanged_uids: tuple[int, ...]        # matched but already so
    modified_uids: tuple[int, ...]         # failed UNCHANGEDSINCE (RFC 7162 MODIFIED)


@dataclass(frozen=True, slots=True)
class Changes:
    """Everything that happened in a mailbox after ``since``."""

    highestmodseq: int
    uidnext: int
    changed: tuple[MessageMeta, ...]       # new or re-flagged, ascending uid
    expunged: tuple[int, ...]              # uids, ascending


FlagMode = Literal["add", "remove", "replace"]


class ChangeListener(Protocol):
    def __call__(self, mailbox_id: int, modseq: int) -> None: ...


class Store(Protocol):
    """Backends: store.sqlite.SqliteStore (embedded), store.postgres later."""

    # -- lifecycle
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # -- accounts
    async def create_account(self, name: str, password_hash: str) -> Account: ...
    async def get_account(self, name: str) -> Account | None: ...
    async def list_accounts(self) -> list[Account]: ...
    async def set_password_hash(self, account_id: int, password_hash: str) -> None: ...
    async def delete_account(self, account_id: int) -> None: ...

    # -- mailboxes (names are full "/"-separated names; INBOX is case-insensitive)
    async def list_mailboxes(self, account_id: int) -> list[MailboxInfo]: ...
    async def get_mailbox(self, account_id: int, name: str) -> MailboxInfo | None: ...
    async def create_mailbox(
        self, account_id: int, name: str, special_use: str | None = None
    ) -> MailboxInfo: ...
    async def delete_mailbox(self, account_id: int, name: str) -> None: ...
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None: ...
    async def subscriptions(self, account_id: int) -> list[str]: ...
    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None: ...
    async def mailbox_keywords(self, mailbox_id: int) -> list[str]: ...
    async def claim_recent(self, mailbox_id: int) -> int:
        """Return the first UID that is \\Recent for the calling session and
        mark everything up to uidnext-1 as no longer recent for later ones."""
        ...
    async def save_recent(self, mailbox_id: int, uidvalidity: int, first_recent: int) -> None:
        """Record that UIDs below *first_recent* are no longer \\Recent (claims
        made in memory by the mailbox index); never moves the mark back, and
        does nothing if the mailbox was re-created (another UIDVALIDITY)."""
        ...

    # -- messages
    async def append(self, mailbox_id: int, items: Sequence[AppendItem]) -> AppendResult: ...
    async def message_list(self, mailbox_id: int) -> list[MessageMeta]: ...
    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes: ...
    async def fetch_records(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageRecord]: ...
    async def read_blob(self, blob_id: str) -> bytes: ...
    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: frozenset[str],
        unchangedsince: int | None = None,
    ) -> StoreResult: ...
    async def copy(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> CopyResult: ...
    async def move(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int
    ) -> CopyResult: ...
    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only among ``uids`` when given);
        return the expunged UIDs, ascending."""
        ...

    async def search_text(
        self, mailbox_id: int, where: Literal["BODY", "TEXT"], needle: str
    ) -> set[int]:
        """UIDs whose decoded body (BODY) or headers+body (TEXT) contain
        ``needle`` as a case-insensitive substring (RFC 9051 §6.4.4)."""
        ...

    # -- change feed (in-process; postgres adds LISTEN/NOTIFY across processes)
    def add_listener(self, listener: Callable[[int, int], None]) -> None: ...
    def remove_listener(self, listener: Callable[[int, int], None]) -> None: ...
