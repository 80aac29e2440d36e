"""One SASL exchange (RFC 4422 §3, §5), driven for any protocol front end.

The mechanisms are sans-IO (auth/sasl.py, auth/scram.py, auth/oauth.py); this
loop feeds them the client's responses, answers their requests for data
(stored SCRAM secrets, token validation) from the Authenticator and sends
their challenges through the two callables the protocol passes in:

    send(raw_challenge)  frames it ("+ " base64 CRLF in IMAP (RFC 9051
                         §6.2.2) and POP3 (RFC 5034 §4)) and flushes
    read()               the client's next response line, None at EOF

Framing problems are exceptions the protocol maps to its own answer (IMAP:
BAD); a failed login is a None result, already logged and counted.
"""

from __future__ import annotations

import binascii
import ssl
from collections.abc import Awaitable, Callable

from mailbag.auth.authenticator import Authenticator, LoginResult, ScramAttempt
from mailbag.auth.channel_binding import tls_exporter
from mailbag.auth.oauth import OAuthMechanism
from mailbag.auth.sasl import (
    Cancel,
    Challenge,
    Done,
    Failed,
    MechanismContext,
    NeedScramCredential,
    SaslDecodeError,
    SaslMechanism,
    Verified,
    VerifyToken,
    decode_client_response,
)
from mailbag.auth.scram import ScramMechanism
from mailbag.config import Config


class SaslAborted(Exception):
    """The connection ended during the exchange."""


class SaslCancelled(Exception):
    """The client answered a challenge with "*" (RFC 9051 §6.2.2: BAD)."""


class SaslBadResponse(Exception):
    """A response that is not valid base64."""


def mechanism_context(
    config: Config, secure: bool, ssl_object: ssl.SSLObject | ssl.SSLSocket | None
) -> MechanismContext:
    """What a connection may be offered: -PLUS needs TLS with a working
    exporter (auth/channel_binding.py), the OAuth mechanisms need issuers."""
    return MechanismContext(
        secure=secure,
        tls_exporter=tls_exporter(ssl_object) if ssl_object is not None else None,
        oauth=bool(config.oauth.issuers),
    )


async def run_exchange(
    auth: Authenticator,
    mech: SaslMechanism,
    initial: bytes | None,
    send: Callable[[bytes], Awaitable[None]],
    read: Callable[[], Awaitable[bytes | None]],
    *,
    remote_ip: str,
    proto: str,
    mech_name: str,
) -> LoginResult | None:
    scram: ScramAttempt | None = None
    step = mech.start(initial)
    while True:
        if isinstance(step, Challenge):
            await send(step.data)
            line = await read()
            if line is None:
                raise SaslAborted()
            try:
                response = decode_client_response(line)
            except (SaslDecodeError, ValueError, binascii.Error):
                raise SaslBadResponse() from None
            if isinstance(response, Cancel):
                raise SaslCancelled()
            step = mech.step(response)
        elif isinstance(step, NeedScramCredential):
            assert isinstance(mech, ScramMechanism)
            scram = await auth.scram_begin(step.authcid, remote_ip, proto=proto, mech=mech_name)
            if scram.blocked:
                return None
            step = mech.provide(scram.credential, scram.known)
        elif isinstance(step, VerifyToken):
            assert isinstance(mech, OAuthMechanism)
            result = await auth.login_token(
                step.token, step.authzid, remote_ip, proto=proto, mech=mech_name
            )
            if isinstance(result, LoginResult):
                return result
            # RFC 7628 §3.2.2: the error status as a challenge, then failure.
            step = mech.rejected(result)
        elif isinstance(step, Done):
            return await auth.login_password(
                step.authcid, step.password, remote_ip, proto=proto, mech=mech_name
            )
        elif isinstance(step, Verified):
            assert scram is not None
            return await auth.scram_end(scram, None)
        else:
            assert isinstance(step, Failed)
            if scram is not None:
                await auth.scram_end(scram, step.reason)
            return None
