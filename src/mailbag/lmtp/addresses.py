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
from mailbag.store.api import INBOX, Account, Store


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str            # as given in RCPT TO (for replies and Delivered-To)
    account: Account
    mailbox_id: int
    mailbox: str            # folder name, for logs


class Unknown(Exception):
    """No such user: ``status`` is the enhanced code (5.1.1 or 5.1.2)."""

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Resolver:
    def __init__(self, store: Store, config: LmtpConfig) -> None:
        self.store = store
        self.config = config
        self.domains = {d.lower().rstrip(".") for d in config.local_domains}

    async def account_for(self, local: str, domain: str) -> tuple[Account, str | None]:
        """The account and the detail (``lists`` of ``alice+lists``, or None)."""
        local = local.lower()
        domain = domain.lower().rstrip(".")
        if domain and self.domains and domain not in self.domains:
            raise Unknown("5.1.2", f"Domain {domain} is not local")
        candidates: list[tuple[str, str | None]] = [(local, None)]
        delim = self.config.recipient_delimiter
        if delim and delim in local:
            base, _, rest = local.partition(delim)
            if base:
                candidates.append((base, rest or None))
        for name, detail in candidates:
            names = [f"{name}@{domain}", name] if domain else [name]
            for n in names:
                account = await self.store.get_account(n)
                if account is not None:
                    return account, detail
            for n in names:
                account = await self.store.resolve_alias(n)
                if account is not None:
                    return account, detail
        raise Unknown("5.1.1", "User unknown")

    async def resolve(
        self, address: str, local: str, domain: str, folder: str | None = None
    ) -> Recipient:
        """``folder``: an explicit folder (``mailbag deliver --folder``); like
        dovecot-lda, a folder that does not exist means INBOX."""
        account, detail = await self.account_for(local, domain)
        if account.disabled:
            raise Unknown("5.2.1", "Mailbox disabled")
        wanted = folder or (detail if self.config.detail_folders else None)
        if wanted:
            # The detail keeps the case the sender typed; folder names are
            # case-sensitive, so try it as given, then lower-cased.
            detail_as_given = _detail_of(address, self.config.recipient_delimiter)
            for name in dict.fromkeys(n for n in (folder, detail_as_given, wanted) if n):
                box = await self.store.get_mailbox(account.id, name)
                if box is not None and not box.noselect:
                    return Recipient(address, account, box.id, box.name)
        inbox = await self.store.get_mailbox(account.id, INBOX)
        if inbox is None:
            raise Unknown("5.2.1", "The account has no INBOX")
        return Recipient(address, account, inbox.id, inbox.name)


def _detail_of(address: str, delim: str) -> str | None:
    local = address.rpartition("@")[0] if "@" in address else address
    if not delim or delim not in local:
        return None
    return local.partition(delim)[2] or None
