"""Logins: rate limit, look up, verify, rehash, log (docs/auth.md).

Shared by IMAP LOGIN and AUTHENTICATE (RFC 9051 §6.2.2, §6.2.3) and POP3.
Three kinds of proof:

- a password (LOGIN, PLAIN, LOGIN mechanism, POP3 USER/PASS): an app
  password of the account (argon2id, found by its selector), else the main
  password, which for accounts flagged ``require_second_factor`` must be
  followed by the current TOTP code (RFC 6238);
- a SCRAM-SHA-256 proof (auth/scram.py), checked against the stored
  StoredKey; refused for accounts that require a second factor;
- a bearer token (OAUTHBEARER/XOAUTH2, auth/oauth.py).

Every attempt ends in exactly one log line:

    auth-ok      rip=.. user=.. proto=.. mech=.. cred=password|totp|app|scram|oauth
    auth-failed  rip=.. user=.. proto=.. mech=.. reason=unknown-user|bad-password|disabled|bad-username|...
    auth-blocked rip=.. user=.. proto=.. mech=.. scope=ip|network|account retry_after=..

``rip`` comes first so the fail2ban filter (docs/fail2ban.md) can anchor on
it. Unknown users cost the same argon2 work as known ones and get the same
answer, so neither timing nor replies reveal which names exist. After a
successful password login the argon2 hash is redone when the configured
parameters changed, and SCRAM secrets are made when missing or made with
another iteration count, so accounts created before SCRAM existed gain it
with their next plain login.

A device holding a valid app password or token is not locked out by an
attacker's failures against its account or network (auth/ratelimit.py): an
app-password-shaped secret whose selector matches one of the account's app
passwords, and a bearer token that validates, are admitted with
``device=True`` (only the per-address limits apply), then verified as usual.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from mailbag.auth import app_passwords, totp
from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.ratelimit import Blocked, LoginRateLimiter, RateLimitPolicy
from mailbag.auth.scram import ScramCredential, fake_credential, make_credential
from mailbag.auth.usernames import InvalidUsername, validate_username
from mailbag.config import AuthConfig, Config
from mailbag.log import log_event
from mailbag.store.api import Account, AccountCredentials, Store

AUTH_LOGGER = "mailbag.auth"
TOTP_DIGITS = totp.DIGITS


@dataclass(frozen=True, slots=True)
class LoginResult:
    """Who logged in and with which credential. ``credential`` is "password",
    "totp" (password + code), "scram", "oauth" or "app:<id>"; sessions keep it
    so that revoking an app password can end the sessions it opened."""

    account: Account
    credential: str
    app_password_id: int | None = None


@dataclass(slots=True)
class ScramAttempt:
    """State between ``scram_begin`` and ``scram_end``."""

    fields: dict[str, Any]
    credential: ScramCredential = field(repr=False)
    known: bool
    account: Account | None = None
    blocked: bool = False
    reason: str = ""              # why the credential is a fake one


class Authenticator:
    def __init__(
        self,
        store: Store,
        hasher: PasswordHasher,
        log: logging.Logger | None = None,
        limiter: LoginRateLimiter | None = None,
        config: Config | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.log = log if log is not None else logging.getLogger(AUTH_LOGGER)
        self.limiter = limiter if limiter is not None else LoginRateLimiter()
        self._own_limiter = limiter is None     # configure() may replace it
        self.config: Config | None = None
        self.auth_config = AuthConfig()
        from mailbag.auth.oauth import TokenValidator

        self.tokens: TokenValidator | None = None
        if config is not None:
            self.configure(config)

    def configure(self, config: Config) -> None:
        """Take the [auth] and [oauth] settings (the server passes its config
        here once; the IMAP front end does it lazily otherwise)."""
        from mailbag.auth.oauth import TokenValidator

        self.config = config
        self.auth_config = config.auth
        if self._own_limiter:
            self.limiter = LoginRateLimiter(RateLimitPolicy.from_config(config.ratelimit))
        validator = TokenValidator(config.oauth)
        self.tokens = validator if validator.enabled else None

    # ------------------------------------------------------------ passwords

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
        result = await self.login_password(username, password, remote_ip, proto=proto, mech=mech)
        return result.account if result is not None else None

    async def login_password(
        self,
        username: str,
        password: bytes,
        remote_ip: str,
        *,
        proto: str = "imap",
        mech: str = "LOGIN",
    ) -> LoginResult | None:
        """Like ``login``, also saying which credential matched."""
        # Field order matters: rip first (see the module docstring).
        fields: dict[str, Any] = {"rip": remote_ip, "user": username, "proto": proto, "mech": mech}
        device = await self._device_candidates(username, password)
        if device is not None:
            # An app password of this account: only the address may stop it.
            if not await self._admit(fields, username, device=True):
                return None
            app = await self._app_password(device[0], password, fields, device[1])
            if app is not None:
                return app
        if not await self._admit(fields, username):
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

        creds = await self._credentials(account)
        secret, code = password, None
        if creds.require_second_factor:
            tail = password[-TOTP_DIGITS:]
            if (creds.totp_secret is None or len(password) <= TOTP_DIGITS
                    or not tail.isdigit()):
                # The main password alone is not enough here; same cost and
                # answer as a wrong password.
                await self._fail(fields, password, "second-factor-required")
                return None
            secret, code = password[:-TOTP_DIGITS], tail.decode("ascii")
        if not await self.hasher.verify_async(account.password_hash, secret):
            await self._fail(fields, None, "bad-password")
            return None
        if code is not None:
            assert creds.totp_secret is not None
            step = totp.matching_step(creds.totp_secret, code)
            # claim_totp_step refuses a step already used: no replay (RFC 6238 §5.2).
            if step is None or not await self.store.claim_totp_step(account.id, step):
                await self._fail(fields, None, "bad-totp")
                return None
        if account.disabled:
            await self._fail(fields, None, "disabled")
            return None

        self.limiter.record_success(remote_ip, username)
        account = await self._maybe_rehash(account, secret, fields)
        await self._maybe_make_scram(account, creds, secret)
        credential = "totp" if code is not None else "password"
        log_event(self.log, "auth-ok", **fields, cred=credential)
        return LoginResult(account, credential)

    async def _device_candidates(
        self, username: str, password: bytes
    ) -> tuple[Account, list[Any]] | None:
        """The account and its app passwords whose selector matches
        ``password``, when there are any. Cheap (no argon2): a guess almost
        never matches a selector (32 bits), so this costs the same for real
        and unknown names."""
        canonical = app_passwords.normalize(password)
        if canonical is None:
            return None
        try:
            name = validate_username(username)
        except InvalidUsername:
            return None
        account = await self.store.get_account(name)
        if account is None:
            return None
        candidates = list(await self.store.app_password_candidates(
            account.id, app_passwords.selector(canonical)
        ))
        return (account, candidates) if candidates else None

    async def _app_password(
        self, account: Account, password: bytes, fields: dict[str, Any], candidates: list[Any]
    ) -> LoginResult | None:
        canonical = app_passwords.normalize(password)
        if canonical is None:
            return None
        for cand in candidates:
            if not await self.hasher.verify_async(cand.hash, canonical.encode()):
                continue
            if account.disabled:
                await self._fail(fields, None, "disabled")
                return None
            new_hash = None
            if self.hasher.needs_rehash(cand.hash):
                new_hash = await self.hasher.hash_async(canonical.encode())
            await self.store.record_app_password_use(cand.id, str(fields["rip"]), new_hash)
            self.limiter.record_success(str(fields["rip"]), str(fields["user"]))
            log_event(self.log, "auth-ok", **fields, cred="app", app=cand.id)
            return LoginResult(account, f"app:{cand.id}", cand.id)
        return None

    async def _credentials(self, account: Account) -> AccountCredentials:
        getter = getattr(self.store, "get_credentials", None)
        if getter is None:  # a store without credential support (test doubles)
            return AccountCredentials()
        creds: AccountCredentials = await getter(account.id)
        return creds

    # ----------------------------------------------------------------- SCRAM

    async def scram_begin(
        self, authcid: str, remote_ip: str, *, proto: str = "imap", mech: str = "SCRAM-SHA-256"
    ) -> ScramAttempt:
        """Rate limit and find the stored SCRAM secrets of ``authcid``. When
        there are none (unknown user, no secrets yet, second factor required)
        a fake credential keeps the exchange looking the same."""
        fields: dict[str, Any] = {"rip": remote_ip, "user": authcid, "proto": proto, "mech": mech}
        iterations = self.auth_config.scram_iterations
        attempt = ScramAttempt(fields, fake_credential(authcid, iterations), known=False)
        if not await self._admit(fields, authcid):
            attempt.blocked = True
            return attempt
        try:
            name = validate_username(authcid)
        except InvalidUsername:
            attempt.reason = "bad-username"
            return attempt
        account = await self.store.get_account(name)
        if account is None:
            attempt.reason = "unknown-user"
            return attempt
        attempt.account = account
        creds = await self._credentials(account)
        if creds.require_second_factor:
            attempt.reason = "second-factor-required"
            return attempt
        if creds.scram_sha256 is None:
            attempt.reason = "no-scram-secrets"
            return attempt
        try:
            attempt.credential = ScramCredential.from_string(creds.scram_sha256)
        except ValueError:
            attempt.reason = "no-scram-secrets"
            return attempt
        attempt.known = True
        return attempt

    async def scram_end(self, attempt: ScramAttempt, reason: str | None) -> LoginResult | None:
        """``reason`` None: the proof was right. Logs and counts the attempt."""
        if attempt.blocked:
            return None
        fields = attempt.fields
        if reason is None and not attempt.known:
            reason = attempt.reason or "unknown-user"
        if reason is not None:
            if reason == "unknown-user" and attempt.reason:
                reason = attempt.reason
            await self._fail(fields, None, reason)
            return None
        assert attempt.account is not None
        if attempt.account.disabled:
            await self._fail(fields, None, "disabled")
            return None
        self.limiter.record_success(str(fields["rip"]), str(fields["user"]))
        log_event(self.log, "auth-ok", **fields, cred="scram")
        return LoginResult(attempt.account, "scram")

    # ---------------------------------------------------------------- tokens

    async def login_token(
        self,
        token: str,
        authzid: str | None,
        remote_ip: str,
        *,
        proto: str = "imap",
        mech: str = "OAUTHBEARER",
    ) -> LoginResult | str:
        """The login for a valid bearer token, else the rejection reason."""
        from mailbag.auth.oauth import TokenRejected

        user = authzid or "-"
        fields: dict[str, Any] = {"rip": remote_ip, "user": user, "proto": proto, "mech": mech}
        identity = None
        rejected = "oauth-not-configured"
        if self.tokens is not None:
            # Validating a signature is cheap and a valid token cannot be
            # guessed: a device with one is judged by its address only.
            try:
                identity = self.tokens.validate(token)
            except TokenRejected as e:
                rejected = e.reason
        if not await self._admit(fields, user, device=identity is not None):
            return "blocked"
        if self.tokens is None:
            await self._fail(fields, None, "oauth-not-configured")
            return "oauth-not-configured"
        if identity is None:
            await self._fail(fields, None, rejected)
            return rejected
        if authzid is not None and authzid.lower() not in (identity.username, identity.claim.lower()):
            # The client asked to be someone the token does not name.
            await self._fail(fields, None, "authzid-mismatch")
            return "authzid-mismatch"
        fields["user"] = identity.username
        account = await self.store.get_account(identity.username)
        if account is None:
            await self._fail(fields, None, "unknown-user")
            return "unknown-user"
        if account.disabled:
            await self._fail(fields, None, "disabled")
            return "disabled"
        self.limiter.record_success(remote_ip, identity.username)
        log_event(self.log, "auth-ok", **fields, cred="oauth", iss=identity.issuer)
        return LoginResult(account, "oauth")

    # --------------------------------------------------------------- helpers

    async def _admit(self, fields: dict[str, Any], username: str, *, device: bool = False) -> bool:
        try:
            await self.limiter.before_attempt(str(fields["rip"]), username, device=device)
        except Blocked as e:
            log_event(
                self.log,
                "auth-blocked",
                level=logging.WARNING,
                **fields,
                scope=e.scope,
                retry_after=round(e.retry_after),
            )
            return False
        return True

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

    async def _maybe_make_scram(
        self, account: Account, creds: AccountCredentials, password: bytes
    ) -> None:
        setter = getattr(self.store, "set_scram_credentials", None)
        if setter is None:
            return
        iterations = self.auth_config.scram_iterations
        if creds.scram_sha256 is not None:
            try:
                if ScramCredential.from_string(creds.scram_sha256).iterations == iterations:
                    return
            except ValueError:
                pass
        loop = asyncio.get_running_loop()
        try:
            cred = await loop.run_in_executor(None, make_credential, password, iterations)
            await setter(account.id, cred.to_string())
        except ValueError:
            return                     # the password cannot be SASLprepped: no SCRAM
        except Exception as e:
            log_event(self.log, "scram-update-failed", level=logging.ERROR,
                      user=account.name, error=type(e).__name__)
            return
        log_event(self.log, "scram-secrets-made", user=account.name, iterations=iterations)
