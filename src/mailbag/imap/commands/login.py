"""Not-authenticated state: STARTTLS (RFC 9051 §6.2.1), AUTHENTICATE with
SASL-IR (§6.2.2, RFC 4959) and LOGIN (§6.2.3). No password is accepted over
an insecure connection (LOGINDISABLED, RFC 9051 §6.2.3, §11.1).

AUTHENTICATE offers PLAIN, LOGIN, SCRAM-SHA-256(-PLUS) and OAUTHBEARER/
XOAUTH2 (auth/sasl.py, driven by auth/exchange.py; docs/auth.md). The
session keeps the credential it logged in with, so that revoking an app
password ends its sessions (auth/revocation.py).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from mailbag.auth import revocation
from mailbag.auth.authenticator import Authenticator, LoginResult
from mailbag.auth.exchange import (
    SaslAborted,
    SaslBadResponse,
    SaslCancelled,
    mechanism_context,
    run_exchange,
)
from mailbag.auth.sasl import ALL_MECHANISMS, create_mechanism
from mailbag.imap.registry import NOT_AUTH, CommandError, Reply, bad, command
from mailbag.tls import unread_input
from mailbag.wire.commands import Authenticate, Login, StartTLS

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(StartTLS, NOT_AUTH)
async def starttls(s: Session, cmd: StartTLS) -> Reply:
    if s.ctx.tls_context is None:
        raise CommandError("TLS is not configured")
    if s.tls_active:
        raise bad("TLS is already active")
    unread = unread_input(s.reader)
    if unread is None:
        # Fail closed: without a way to drop clear-text input the upgrade
        # could run injected commands as if they came over TLS.
        raise CommandError("STARTTLS is unavailable", "UNAVAILABLE")
    s.send(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
    await s.flush()
    # Clear text the client sent after STARTTLS must never be executed as if
    # it came over TLS (RFC 9051 §11.1, RFC 3207 §6). The session's parser
    # drops what it holds, but the socket may have delivered more than the
    # session's last read took: that part still sits in the StreamReader.
    # Nothing can be added between this and start_tls(), which stops reading
    # the clear-text transport before it first yields.
    unread.clear()
    await s.start_tls()
    return Reply(answered=True)


async def _finish_login(s: Session, username: str, password: bytes, mech: str) -> Reply:
    # A blocked source gets the same answer as a wrong password, so that
    # blocking reveals nothing about the account.
    result = await _authenticator(s).login_password(username, password, s.remote_ip, mech=mech)
    return _logged_in(s, result)


def _authenticator(s: Session) -> Authenticator:
    auth = s.ctx.authenticator
    if auth.config is None:
        # The server did not hand its config over: [auth]/[oauth] from here.
        auth.configure(s.ctx.config)
    return auth


def _logged_in(s: Session, result: LoginResult | None) -> Reply:
    if result is None:
        raise CommandError("Authentication failed", "AUTHENTICATIONFAILED")
    s.after_login(result.account)
    s.credential_id = result.credential
    if result.app_password_id is not None:
        revocation.watch(s.ctx)
    from mailbag.imap.capabilities import capability_string

    return Reply(text="Logged in", code=f"CAPABILITY {capability_string(s)}")


@command(Login, NOT_AUTH)
async def login(s: Session, cmd: Login) -> Reply:
    if not s.secure:
        raise CommandError("Plaintext login is disabled; use STARTTLS", "PRIVACYREQUIRED")
    try:
        username = cmd.username.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("Authentication failed", "AUTHENTICATIONFAILED") from None
    return await _finish_login(s, username, cmd.password, "LOGIN")


@command(Authenticate, NOT_AUTH)
async def authenticate(s: Session, cmd: Authenticate) -> Reply:
    auth = _authenticator(s)
    ssl_object = s.writer.get_extra_info("ssl_object") if s.tls_active else None
    context = mechanism_context(s.ctx.config, s.secure, ssl_object)
    mech = create_mechanism(cmd.mechanism, context)
    if mech is None:
        if not s.secure and cmd.mechanism.upper() in ALL_MECHANISMS:
            raise CommandError("Plaintext authentication is disabled; use STARTTLS",
                               "PRIVACYREQUIRED")
        raise CommandError(f"Unsupported mechanism {cmd.mechanism}", "CANNOT")

    async def send(challenge: bytes) -> None:
        s.send(b"+ " + base64.b64encode(challenge) + b"\r\n")
        await s.flush()

    try:
        result = await run_exchange(
            auth, mech, cmd.initial_response, send, s.read_auth_line,
            remote_ip=s.remote_ip, proto="imap", mech_name=cmd.mechanism.upper(),
        )
    except SaslAborted:
        raise bad("Authentication exchange aborted") from None
    except SaslBadResponse:
        raise bad("Invalid base64 in SASL response") from None
    except SaslCancelled:
        raise bad("Authentication cancelled") from None
    return _logged_in(s, result)
