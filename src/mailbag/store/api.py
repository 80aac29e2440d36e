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

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
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
class AccountCredentials:
    """An account's secrets besides its argon2id password hash (docs/auth.md)."""

    scram_sha256: str | None = field(default=None, repr=False)   # RFC 5803 form
    totp_secret: str | None = field(default=None, repr=False)    # base32 (RFC 6238)
    totp_last_step: int = 0                  # last accepted TOTP step (no replay)
    require_second_factor: bool = False


@dataclass(frozen=True, slots=True)
class AppPassword:
    """A per-device password; only its argon2id hash is stored."""

    id: int
    account_id: int
    label: str
    selector: str                 # short hash of the secret, to find the candidate
    hash: str = field(repr=False)
    created: datetime
    last_used: datetime | None = None
    last_ip: str | None = None
    revoked: datetime | None = None

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


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What a session needs to know about every message in its view."""

    uid: int
    flags: frozenset[str]         # system flags ("\\Seen") and keywords, as given
    modseq: int


# Not frozen, for the reason MessageRecord is not: THREAD builds one per
# message (frozen: ~0.7 s per million, plain: ~0.16 s). Nothing changes one.
@dataclass(slots=True)
class ThreadMessage:
    """What RFC 5256 THREAD needs of a message (imap/thread.py)."""

    uid: int
    date: float                   # sent date (internal date when there is none)
    subject: str                  # base subject, i;ascii-casemap folded
    reply: bool                   # the subject was a reply or forward (§2.1)
    message_id: str | None
    references: tuple[str, ...]   # References, else the first In-Reply-To id


# Not frozen: FETCH builds one per row, and a frozen dataclass's __init__
# (object.__setattr__ per field) cost ten times the rest of the row.
@dataclass(slots=True)
class MessageRecord:
    """One message in one mailbox, with everything FETCH and SEARCH read.
    Treat it as read-only."""

    uid: int
    flags: frozenset[str]
    modseq: int
    size: int                     # RFC822.SIZE: bytes of the raw message
    # INTERNALDATE as unix seconds and its UTC offset in minutes, SAVEDATE
    # (RFC 8514) in unix seconds: datetimes are made only when asked for.
    internal_stamp: int
    internal_tz: int
    saved_stamp: int
    blob_id: str                  # hex SHA-256 of the raw message (EMAILID source)
    # mime.facts.dump() from ingest; its envelope, body and bodystructure may
    # be empty: the three fields below are the ones to use.
    facts: bytes
    envelope: bytes               # IMAP-rendered ENVELOPE
    body: bytes                   # IMAP-rendered BODY (non-extensible)
    bodystructure: bytes          # IMAP-rendered BODYSTRUCTURE

    @property
    def internaldate(self) -> datetime:
        """Timezone-aware, in the zone the message arrived with."""
        return from_stamp(self.internal_stamp, self.internal_tz)

    @property
    def savedate(self) -> datetime:
        """When it entered this mailbox, in UTC."""
        return from_stamp(self.saved_stamp, 0)


@functools.lru_cache(maxsize=256)
def _zone(offset_minutes: int) -> timezone:
    # A mailbox has a handful of distinct UTC offsets: one object each.
    return timezone(timedelta(minutes=offset_minutes))


def from_stamp(seconds: int, offset_minutes: int) -> datetime:
    return datetime.fromtimestamp(seconds, _zone(offset_minutes))


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
    highestmodseq: int = 0        # the destination's modseq for this copy; 0: none copied


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


@dataclass(frozen=True, slots=True)
class Alias:
    """A delivery alias: ``address`` (lower-cased; a full address or a bare
    local part matching every local domain) delivers to account ``account``."""

    address: str
    account: str


@dataclass(frozen=True, slots=True)
class RecipientMatch:
    """What ``Store.find_recipient`` found for a delivery address."""

    candidate: int                 # index of the candidate that matched
    account: Account
    mailbox: MailboxInfo | None    # first selectable folder asked for, else INBOX; None: no INBOX
    quota_used: int | None = None  # bytes stored, when the account has a quota


TextWhere = Literal["BODY", "TEXT", "FROM", "TO", "CC", "BCC", "SUBJECT"]


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

    # -- credentials (docs/auth.md)
    async def get_credentials(self, account_id: int) -> AccountCredentials: ...
    async def set_scram_credentials(self, account_id: int, scram: str | None) -> None: ...
    async def set_totp_secret(self, account_id: int, secret: str | None) -> None: ...
    async def claim_totp_step(self, account_id: int, step: int) -> bool:
        """Record ``step`` as used; False when it (or a later one) already was."""
        ...
    async def set_require_second_factor(self, account_id: int, required: bool) -> None: ...
    async def add_app_password(
        self, account_id: int, label: str, selector: str, password_hash: str
    ) -> AppPassword:
        """AlreadyExists when the account has a live app password with that label."""
        ...
    async def list_app_passwords(
        self, account_id: int, include_revoked: bool = False
    ) -> list[AppPassword]: ...
    async def app_password_candidates(self, account_id: int, selector: str) -> list[AppPassword]:
        """The live app passwords of the account with this selector."""
        ...
    async def revoke_app_password(self, account_id: int, label: str) -> AppPassword:
        """NotFound when no live app password has that label."""
        ...
    async def record_app_password_use(
        self, app_password_id: int, remote_ip: str, new_hash: str | None = None
    ) -> None:
        """Note the last use (and from where); ``new_hash`` replaces the hash (rehash)."""
        ...
    async def revoked_app_passwords(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` that are revoked or gone."""
        ...

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
    async def count_from(self, mailbox_id: int, first_uid: int) -> int:
        """How many messages have a UID of at least *first_uid* (STATUS RECENT)."""
        ...
    async def deleted_size(self, mailbox_id: int) -> int:
        """Bytes (RFC822.SIZE) of the messages flagged \\Deleted (what an
        EXPUNGE would free; STATUS DELETED-STORAGE, RFC 9208 §4.2)."""
        ...
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
    async def deliver(
        self, mailbox_ids: Sequence[int], item: AppendItem
    ) -> list[AppendResult | StoreError]:
        """Append one message to several mailboxes (LMTP, ``mailbag deliver``):
        parsed once and stored as one blob; one result per mailbox, in order,
        a StoreError (OverQuota, NotAllowed...) for a mailbox that failed alone."""
        ...
    async def quota_usage(self, account_id: int) -> int:
        """Bytes (sum of RFC822.SIZE) stored in the account's mailboxes."""
        ...
    async def set_quota(self, account_id: int, quota_bytes: int | None) -> None:
        """The account's storage limit in bytes; None: unlimited. APPEND,
        COPY, MOVE across accounts and delivery raise OverQuota beyond it."""
        ...
    async def message_list(self, mailbox_id: int) -> list[MessageMeta]: ...
    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes: ...
    async def prune_expunged(self, before: int) -> int:
        """Forget expunges made before unix time *before* (QRESYNC history);
        changes_since from a modseq older than what was forgotten then lists
        every UID below UIDNEXT that is gone. Returns how many."""
        ...
    async def fetch_records(
        self, mailbox_id: int, uids: Sequence[int], facts: bool = True
    ) -> list[MessageRecord]:
        """Records of the messages at *uids*; with *facts* False their facts
        are left empty (b"") for callers that use only the other fields."""
        ...
    async def sort_uids(
        self, mailbox_id: int, criteria: Sequence[tuple[str, bool]], uids: Sequence[int]
    ) -> list[int]:
        """The messages of *uids* still in the mailbox ordered by SORT
        *criteria* (RFC 5256/5957 names upper-cased, reverse), then by UID,
        from keys kept at ingest (mime/sortkeys.py)."""
        ...
    async def thread_facts(self, mailbox_id: int, uids: Sequence[int]) -> list[ThreadMessage]:
        """THREAD facts of the messages of *uids* still in the mailbox, by UID."""
        ...
    async def expunge_mark(self, mailbox_id: int) -> int:
        """A number that changes whenever a message leaves the mailbox (the
        highest expunge modseq it remembers or has forgotten; -1 when the
        mailbox is gone): imap/sort_cache.py checks it to reuse an order."""
        ...
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

    async def search_text(self, mailbox_id: int, where: TextWhere, needle: str) -> set[int]:
        """UIDs whose decoded body (BODY), headers+body (TEXT) or one header
        field (FROM, TO, CC, BCC as "Name <addr>" lists; SUBJECT decoded)
        contain ``needle`` as a case-insensitive substring (RFC 9051 §6.4.4)."""
        ...

    # -- change feed (in-process; postgres adds LISTEN/NOTIFY across processes)
    def watch_mailbox(self, mailbox_id: int, modseq: int) -> None:
        """Also announce changes other processes commit to this mailbox."""
        ...
    def unwatch_mailbox(self, mailbox_id: int) -> None: ...
    def add_listener(self, listener: Callable[[int, int], None]) -> None: ...
    def remove_listener(self, listener: Callable[[int, int], None]) -> None: ...
    # Mailbox names and subscriptions (NOTIFY MailboxName/SubscriptionChange):
    # listener(account_id) after this process changed them, and, for the
    # accounts watch_names follows, after another process did.
    def add_names_listener(self, listener: Callable[[int], None]) -> None: ...
    def remove_names_listener(self, listener: Callable[[int], None]) -> None: ...
    def watch_names(self, account_id: int) -> None: ...
    def unwatch_names(self, account_id: int) -> None: ...

    # -- delivery aliases (addresses are compared case-insensitively)
    async def add_alias(self, address: str, account_id: int) -> None: ...
    async def delete_alias(self, address: str) -> None: ...
    async def list_aliases(self) -> list[Alias]: ...
    async def resolve_alias(self, address: str) -> Account | None: ...
    async def find_recipient(
        self, candidates: Sequence[tuple[Sequence[str], Sequence[str]]]
    ) -> RecipientMatch | None:
        """The whole look-up of one delivery address in one call (LMTP RCPT,
        ``mailbag deliver``): for each candidate ``(names, folders)`` in order,
        an account named like one of ``names``, else an alias of one of them;
        the first hit wins. Then the first of ``folders`` that exists and can
        hold messages, else INBOX. Exact (no cache): it sees every commit."""
        ...
