"""Which account and folder a recipient address delivers to (LMTP RCPT,
``mailbag deliver``).

Policy (docs/postfix.md "Addresses"):
- Local parts are case-insensitive (RFC 5321 §2.4 lets the receiving host
  decide; every mailbag account name is lower-case) and domains too.
- Domains: with ``lmtp.local_domains`` empty every domain is local (the MTA
  in front already decided the mail is ours, as ``virtual_mailbox_domains``
  does for Postfix); otherwise a domain not listed is refused with 550 5.1.2.
- Lookup order, first hit wins: for the whole local part, then (when it holds
  the recipient delimiter) for the part before it: account ``local@domain``,
  account ``local``, alias ``local@domain``, alias ``local``. So an account
  or alias named ``a+b`` still wins over plus-addressing of ``a``.
- Plus-addressing: ``alice+lists@`` delivers to alice, into her folder
  ``lists`` when it exists and can hold messages and ``lmtp.detail_folders``
  is on; otherwise into INBOX. Folders are never created by delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbag.config import LmtpConfig
from mailbag.store.api import Account, Store


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str            # as given in RCPT TO (for replies and Delivered-To)
    account: Account
    mailbox_id: int
    mailbox: str            # folder name, for logs
    quota_used: int | None = None   # bytes stored at RCPT time, when there is a quota


class Unknown(Exception):
    """No such user: ``status`` is the enhanced code (5.1.1 or 5.1.2)."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Resolver:
    """Turns RCPT addresses into recipients with ONE store call each
    (``Store.find_recipient``): exact, so an alias removed or a quota changed
    from the CLI (another process) counts for the very next RCPT."""

    def __init__(self, store: Store, config: LmtpConfig) -> None:
        self.store = store
        self.config = config
        self.domains = {d.lower().rstrip(".") for d in config.local_domains}

    def candidates(
        self, address: str, local: str, domain: str, folder: str | None
    ) -> list[tuple[list[str], list[str]]]:
        """The look-up order of the module docstring, as (names, folders)
        pairs for ``Store.find_recipient``."""
        local = local.lower()
        domain = domain.lower().rstrip(".")
        if domain and self.domains and domain not in self.domains:
            raise Unknown("5.1.2", f"Domain {domain} is not local")
        parts: list[tuple[str, str | None]] = [(local, None)]
        delim = self.config.recipient_delimiter
        if delim and delim in local:
            base, _, rest = local.partition(delim)
            if base:
                parts.append((base, rest or None))
        out: list[tuple[list[str], list[str]]] = []
        for name, detail in parts:
            names = [f"{name}@{domain}", name] if domain else [name]
            wanted = folder or (detail if self.config.detail_folders else None)
            folders: list[str] = []
            if wanted:
                # The detail keeps the case the sender typed; folder names are
                # case-sensitive, so try it as given, then lower-cased. Like
                # dovecot-lda, a folder that does not exist means INBOX.
                as_given = (_detail_of(address, delim)
                            if detail is not None and self.config.detail_folders else None)
                folders = list(dict.fromkeys(n for n in (folder, as_given, wanted) if n))
            out.append((names, folders))
        return out

    async def resolve(
        self, address: str, local: str, domain: str, folder: str | None = None
    ) -> Recipient:
        """``folder``: an explicit folder (``mailbag deliver --folder``)."""
        match = await self.store.find_recipient(self.candidates(address, local, domain, folder))
        if match is None:
            raise Unknown("5.1.1", "User unknown")
        if match.account.disabled:
            raise Unknown("5.2.1", "Mailbox disabled")
        if match.mailbox is None:
            raise Unknown("5.2.1", "The account has no INBOX")
        return Recipient(address, match.account, match.mailbox.id, match.mailbox.name,
                         match.quota_used)


def _detail_of(address: str, delim: str) -> str | None:
    local = address.rpartition("@")[0] if "@" in address else address
    if not delim or delim not in local:
        return None
    return local.partition(delim)[2] or None
