"""Password logins: rate limit, look up, verify, rehash, log.

Shared by IMAP LOGIN, AUTHENTICATE PLAIN/LOGIN (RFC 9051 §6.2.2, §6.2.3) and
later POP3. Every attempt ends in exactly one log line:

    auth-ok      rip=.. user=.. proto=.. mech=..
    auth-failed  rip=.. user=.. proto=.. mech=.. reason=unknown-user|bad-password|disabled|bad-username
    auth-blocked rip=.. user=.. proto=.. mech=.. scope=ip|account retry_after=..

``rip`` comes first so the fail2ban filter (docs/fail2ban.md) can anchor on
it. Unknown users cost the same argon2 work as known ones and get the same
answer, so neither timing nor replies reveal which names exist.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.ratelimit import Blocked, LoginRateLimiter
from mailbag.auth.usernames import InvalidUsername, validate_username
from mailbag.log import log_event
from mailbag.store.api import Account, Store

AUTH_LOGGER = "mailbag.auth"


class Authenticator:
    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        log: logging.Logger | None = None,
        limiter: LoginRateLimiter | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.log = log if log is not None else logging.getLogger(AUTH_LOGGER)
        self.limiter = limiter if limiter is not None else LoginRateLimiter()

    async def login(
        self,
        username: str,
        password: bytes,
        remote_ip: str,
        *,
        proto: str = "imap",
        mech: str = "LOGIN",
    ) -> Account | None:
        """The account when ``password`` is right, else None (after any
        rate-limit delay). Never raises for bad input."""
        # Field order matters: rip first (see the module docstring).
        fields: dict[str, Any] = {"rip": remote_ip, "user": username, "proto": proto, "mech": mech}
        try:
            await self.limiter.before_attempt(remote_ip, username)
        except Blocked as e:
            log_event(
                self.log,
                "auth-blocked",
                level=logging.WARNING,
                **fields,
                scope=e.scope,
                retry_after=round(e.retry_after),
            )
            return None

        try:
            name = validate_username(username)
        except InvalidUsername:
            await self._fail(fields, password, "bad-username")
            return None
        account = await self.store.get_account(name)
        if account is None:
            await self._fail(fields, password, "unknown-user")
            return None
        ok = await self.hasher.verify_async(account.password_hash, password)
        if not ok:
            await self._fail(fields, None, "bad-password")
            return None
        if account.disabled:
            await self._fail(fields, None, "disabled")
            return None

        self.limiter.record_success(remote_ip, username)
        account = await self._maybe_rehash(account, password, fields)
        log_event(self.log, "auth-ok", **fields)
        return account

    async def _fail(
        self, fields: dict[str, Any], dummy_password: bytes | None, reason: str
    ) -> None:
        if dummy_password is not None:
            await self.hasher.dummy_verify_async(dummy_password)
        self.limiter.record_failure(str(fields["rip"]), str(fields["user"]))
        log_event(self.log, "auth-failed", level=logging.WARNING, **fields, reason=reason)

    async def _maybe_rehash(
        self, account: Account, password: bytes, fields: dict[str, Any]
    ) -> Account:
        if not self.hasher.needs_rehash(account.password_hash):
            return account
        try:
            new_hash = await self.hasher.hash_async(password)
            await self.store.set_password_hash(account.id, new_hash)
        except Exception as e:
            # The login itself succeeded; an old-parameter hash still works.
            log_event(
                self.log, "password-rehash-failed", level=logging.ERROR,
                user=account.name, error=type(e).__name__,
            )
            return account
        log_event(self.log, "password-rehashed", user=account.name)
        return dataclasses.replace(account, password_hash=new_hash)
