"""Not-authenticated state: STARTTLS (RFC 9051 §6.2.1), AUTHENTICATE with
SASL-IR (§6.2.2, RFC 4959) and LOGIN (§6.2.3). No password is accepted over
an insecure connection (LOGINDISABLED, RFC 9051 §6.2.3, §11.1).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from mailbag.auth.sasl import (
    Cancel,
    Challenge,
    Done,
    SaslDecodeError,
    decode_client_response,
    new_mechanism,
)
from mailbag.imap.registry import NOT_AUTH, CommandError, Reply, bad, command
from mailbag.wire.commands import Authenticate, Login, StartTLS

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(StartTLS, NOT_AUTH)
async def starttls(s: Session, cmd: StartTLS) -> Reply:
    if s.ctx.tls_context is None:
        raise CommandError("TLS is not configured")
    if s.tls_active:
        raise bad("TLS is already active")
    s.send(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
    await s.flush()
    await s.start_tls()
    return Reply(answered=True)


async def _finish_login(s: Session, username: str, password: bytes, mech: str) -> Reply:
    # A blocked source gets the same answer as a wrong password, so that
    # blocking reveals nothing about the account.
    account = await s.ctx.authenticator.login(username, password, s.remote_ip, mech=mech)
    if account is None:
        raise CommandError("Authentication failed", "AUTHENTICATIONFAILED")
    s.after_login(account)
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
    mech = new_mechanism(cmd.mechanism)
    if mech is None:
        raise CommandError(f"Unsupported mechanism {cmd.mechanism}", "CANNOT")
    if not s.secure:
        raise CommandError("Plaintext authentication is disabled; use STARTTLS",
                           "PRIVACYREQUIRED")
    step = mech.start(cmd.initial_response)
    while isinstance(step, Challenge):
        s.send(b"+ " + base64.b64encode(step.data) + b"\r\n")
        await s.flush()
        line = await s.read_auth_line()
        if line is None:
            raise bad("Authentication exchange aborted")
        try:
            response = decode_client_response(line)
        except (SaslDecodeError, ValueError, binascii.Error):
            raise bad("Invalid base64 in SASL response") from None
        if isinstance(response, Cancel):
            raise bad("Authentication cancelled")
        step = mech.step(response)
    if not isinstance(step, Done):
        raise CommandError("Authentication failed", "AUTHENTICATIONFAILED")
    return await _finish_login(s, step.authcid, step.password, cmd.mechanism)
