"""AUTHORIZATION state: STLS (RFC 2595 §4), USER/PASS (RFC 1939 §7) and AUTH
(RFC 5034, mechanisms PLAIN and LOGIN from auth/sasl.py).

No password crosses an insecure connection: before STLS (and unless the peer
is loopback with secure_loopback on) USER, PASS and AUTH are refused with
"-ERR [AUTH]", like Dovecot. A failed or rate-limited login answers
"-ERR [AUTH] Authentication failed" alike (RFC 3206 §4), so blocking reveals
nothing about the account; "[IN-USE]" comes only after the password checked.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from mailbag.auth import revocation
from mailbag.auth.sasl import (
    Cancel,
    Challenge,
    Done,
    SaslDecodeError,
    decode_client_response,
    new_mechanism,
)
from mailbag.pop3.codec import Command, multiline, ok
from mailbag.pop3.registry import AUTHORIZATION, Pop3Error, command
from mailbag.tls import unread_input

if TYPE_CHECKING:
    from mailbag.pop3.session import Pop3Session

# The mechanisms POP3 offers (CAPA "SASL", bare AUTH), in that order. Only
# password mechanisms for now; when auth/ grows more (SCRAM, OAuth), POP3 can
# offer them through the shared exchange loop.
POP3_MECHANISMS = ("PLAIN", "LOGIN")

PLAINTEXT_REFUSED = "Plaintext authentication is disabled on an insecure connection; use STLS"


def _require_secure(s: Pop3Session) -> None:
    if not s.secure:
        raise Pop3Error(PLAINTEXT_REFUSED, "AUTH")


async def _login(s: Pop3Session, username: str, password: bytes, mech: str) -> None:
    result = await s.ctx.authenticator.login_password(
        username, password, s.remote_ip, proto="pop3", mech=mech
    )
    if result is None:
        raise Pop3Error("Authentication failed", "AUTH")
    await s.enter_transaction(result.account, mech)
    # Revoking an app password ends this session too (auth/revocation.py).
    s.credential_id = result.credential
    if result.credential.startswith("app:"):
        revocation.watch(s.ctx)


@command("STLS", AUTHORIZATION)
async def stls(s: Pop3Session, cmd: Command) -> None:
    if cmd.arg:
        raise Pop3Error("STLS takes no arguments")
    if s.ctx.tls_context is None:
        raise Pop3Error("TLS is not available")
    if s.tls_active:
        raise Pop3Error("TLS is already active")
    if unread_input(s.reader) is None:
        # Fail closed, as IMAP's STARTTLS does: without a way to drop
        # clear-text input, injected commands could run as if sent over TLS.
        raise Pop3Error("STLS is unavailable", "SYS/TEMP")
    s.send(ok("Begin TLS negotiation"))
    await s.flush()
    # RFC 2595 §4: forget what the client said before; it must USER again.
    s.pending_user = None
    await s.start_tls()


@command("USER", AUTHORIZATION)
async def user(s: Pop3Session, cmd: Command) -> None:
    _require_secure(s)
    if not cmd.arg:
        raise Pop3Error("USER needs a user name")
    # The same answer whether or not the name exists (RFC 1939 §7 allows it
    # and it hides which names are real). A name that is not UTF-8 fails at
    # PASS, where the attempt is counted and logged.
    s.pending_user = cmd.arg.decode("utf-8", "replace")
    s.send(ok("Send PASS"))


@command("PASS", AUTHORIZATION)
async def pass_(s: Pop3Session, cmd: Command) -> None:
    _require_secure(s)
    username, s.pending_user = s.pending_user, None
    if username is None:
        raise Pop3Error("Send USER first")
    if not cmd.arg:
        raise Pop3Error("PASS needs a password")
    await _login(s, username, cmd.arg, "USER")


@command("AUTH", AUTHORIZATION)
async def auth(s: Pop3Session, cmd: Command) -> None:
    args = cmd.args()
    if not args:
        # Before CAPA existed, clients sent a bare AUTH to list mechanisms
        # (RFC 1734 practice, still used by some); answer as Dovecot does.
        mechs = list(POP3_MECHANISMS) if s.secure else []
        s.send(multiline(ok("Supported mechanisms follow"), mechs))
        return
    if len(args) > 2:
        raise Pop3Error("AUTH takes a mechanism and an optional initial response")
    name = args[0].upper()
    mech = new_mechanism(name) if name in POP3_MECHANISMS else None
    if mech is None:
        raise Pop3Error(f"Unsupported authentication mechanism {args[0][:40]}")
    _require_secure(s)
    initial: bytes | None = None
    if len(args) == 2:
        try:
            decoded = decode_client_response(args[1].encode("ascii"))
        except (SaslDecodeError, ValueError, binascii.Error):
            raise Pop3Error("Invalid base64 in the initial response") from None
        if isinstance(decoded, Cancel):
            raise Pop3Error("Authentication cancelled")
        initial = decoded
    step = mech.start(initial)
    while isinstance(step, Challenge):
        # RFC 5034 §4: continue-req = "+" SP [base64] CRLF
        s.send(b"+ " + base64.b64encode(step.data) + b"\r\n")
        await s.flush()
        line = await s.read_line()
        if line is None:
            raise Pop3Error("Authentication exchange aborted")
        try:
            response = decode_client_response(line)
        except (SaslDecodeError, ValueError, binascii.Error):
            raise Pop3Error("Invalid base64 in the SASL response") from None
        if isinstance(response, Cancel):
            raise Pop3Error("Authentication cancelled")
        step = mech.step(response)
    if not isinstance(step, Done):
        raise Pop3Error("Authentication failed", "AUTH")
    await _login(s, step.authcid, step.password, name)
