"""Sans-IO SASL server mechanisms: PLAIN (RFC 4616) and LOGIN; the step
types SCRAM (auth/scram.py, RFC 5802/7677) and OAUTHBEARER/XOAUTH2
(auth/oauth.py, RFC 7628) add; the registry of every mechanism.

LOGIN is the de-facto mechanism from draft-murchison-sasl-login: the server
asks "Username:" then "Password:". Both mechanisms only extract an identity
and a password; checking them is the Authenticator's job, and base64 framing
is the session's (except for client responses, decoded here with the IMAP
rules of RFC 9051 §6.2.2 and RFC 4959).

Use::

    mech = new_mechanism("PLAIN")          # None: not supported
    step = mech.start(initial_response)    # None when the client sent none
    while isinstance(step, Challenge):
        ... send base64(step.data), read a line ...
        resp = decode_client_response(line)
        if resp is CANCEL: ... answer BAD, stop
        step = mech.step(resp)
    # step is Done(authcid, password) or Failed(reason)

The loop above serves PLAIN and LOGIN (``MECHANISMS``, ``new_mechanism``).
SCRAM and the OAuth mechanisms also ask their caller for data mid-exchange
(``NeedScramCredential``, ``VerifyToken``) and may prove the identity
themselves (``Verified``); ``auth/exchange.py`` drives every mechanism with
the protocol's I/O passed in, so IMAP and POP3 share one loop::

    names = available_mechanisms(MechanismContext(secure, tls_exporter, oauth))
    mech = create_mechanism(name, context)          # None: not offered here
    result = await run_exchange(authenticator, mech, initial, send, read, ...)
"""

from __future__ import annotations

import abc
import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import ClassVar, Final


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` (raw; the session base64-encodes it) and wait for a response."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    """The exchange is complete; verify this identity and password."""

    authcid: str
    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Failed:
    """The client sent something malformed; ``reason`` is for the log only."""

    reason: str


@dataclass(frozen=True, slots=True)
class NeedScramCredential:
    """SCRAM needs the stored credential of ``authcid`` before it can send
    the server-first message; answer with ``ScramMechanism.provide``."""

    authcid: str


@dataclass(frozen=True, slots=True)
class VerifyToken:
    """A bearer token to validate; on failure answer with
    ``OAuthMechanism.rejected`` (RFC 7628 §3.2.2 error challenge)."""

    token: str = field(repr=False)
    authzid: str | None           # the user the client named, if any


@dataclass(frozen=True, slots=True)
class Verified:
    """The mechanism proved the identity itself (SCRAM): only authorize it."""

    authcid: str


SaslStep = Challenge | Done | Failed | NeedScramCredential | VerifyToken | Verified


@dataclass(frozen=True, slots=True)
class Cancel:
    """The client answered a challenge with "*" (RFC 9051 §6.2.2)."""


CANCEL: Final = Cancel()


# RFC 4648 §4 with exact padding; b64decode alone tolerates stray "=".
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


class SaslDecodeError(ValueError):
    """A client response that is not valid base64 (answer BAD)."""


def decode_client_response(line: bytes) -> bytes | Cancel:
    """Decode one client response line (CRLF optional).

    "*" cancels. "=" stands for an empty response (RFC 4959, for an initial
    response; harmless elsewhere since "=" alone is not valid base64).
    """
    line = line.removesuffix(b"\n").removesuffix(b"\r")
    if line == b"*":
        return CANCEL
    if line == b"=":
        return b""
    if not _BASE64.match(line):
        raise SaslDecodeError("response is not valid base64")
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise SaslDecodeError("response is not valid base64") from None


def encode_challenge(data: bytes) -> bytes:
    """The base64 text of a challenge, for the session's "+ " line."""
    return base64.b64encode(data)


class SaslMechanism(abc.ABC):
    """One exchange with one client; make a new object per AUTHENTICATE."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._finished = False

    @abc.abstractmethod
    def start(self, initial: bytes | None) -> SaslStep:
        """Begin; ``initial`` is the decoded initial response (RFC 4959), if any."""

    @abc.abstractmethod
    def step(self, response: bytes) -> SaslStep:
        """Continue with the decoded response to the last challenge."""

    def _finish(self, result: Done | Failed) -> SaslStep:
        self._finished = True
        return result


def _identity(raw: bytes) -> str | None:
    """A UTF-8 identity without control characters, or None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    return text


class PlainMechanism(SaslMechanism):
    """RFC 4616: one message ``[authzid] NUL authcid NUL passwd``."""

    name = "PLAIN"

    def __init__(self) -> None:
        super().__init__()
        self._started = False

    def start(self, initial: bytes | None) -> SaslStep:
        if self._started:
            return self._finish(Failed("already-started"))
        self._started = True
        if initial is None:
            # RFC 4422 §5: an empty challenge asks for the initial response.
            return Challenge(b"")
        return self._message(initial)

    def step(self, response: bytes) -> SaslStep:
        if not self._started or self._finished:
            return self._finish(Failed("unexpected-response"))
        return self._message(response)

    def _message(self, message: bytes) -> SaslStep:
        parts = message.split(b"\0")
        if len(parts) != 3:
            return self._finish(Failed("malformed-plain"))
        authzid_raw, authcid_raw, password = parts
        authcid = _identity(authcid_raw)
        if authcid is None:
            return self._finish(Failed("bad-authcid"))
        if not password:
            return self._finish(Failed("empty-password"))
        if authzid_raw:
            # We do not support acting as another user (no admin proxying):
            # an authzid is only accepted when it names the same account.
            authzid = _identity(authzid_raw)
            if authzid is None or authzid.lower() != authcid.lower():
                return self._finish(Failed("authzid-not-permitted"))
        return self._finish(Done(authcid, password))


class LoginMechanism(SaslMechanism):
    """The LOGIN mechanism: "Username:" then "Password:" challenges.

    Some clients send the user name as an initial response; that is accepted.
    """

    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._authcid: str | None = None

    def start(self, initial: bytes | None) -> SaslStep:
        if self._started:
            return self._finish(Failed("already-started"))
        self._started = True
        if initial is None:
            return Challenge(b"Username:")
        return self._username(initial)

    def step(self, response: bytes) -> SaslStep:
        if not self._started or self._finished:
            return self._finish(Failed("unexpected-response"))
        if self._authcid is None:
            return self._username(response)
        if not response:
            return self._finish(Failed("empty-password"))
        return self._finish(Done(self._authcid, response))

    def _username(self, raw: bytes) -> SaslStep:
        authcid = _identity(raw)
        if authcid is None:
            return self._finish(Failed("bad-authcid"))
        self._authcid = authcid
        return Challenge(b"Password:")


MECHANISMS: Final[dict[str, type[SaslMechanism]]] = {
    PlainMechanism.name: PlainMechanism,
    LoginMechanism.name: LoginMechanism,
}


def new_mechanism(name: str) -> SaslMechanism | None:
    """A fresh mechanism for ``name`` (case-insensitive), None if unsupported."""
    cls = MECHANISMS.get(name.upper())
    return cls() if cls is not None else None


@dataclass(frozen=True, slots=True)
class MechanismContext:
    """What decides which mechanisms a connection is offered."""

    secure: bool                  # TLS, or loopback counted as secure
    tls_exporter: bytes | None = field(default=None, repr=False)  # RFC 9266 cb data
    oauth: bool = False           # token issuers are configured


# In the order they are advertised (strongest first, RFC 4422 leaves it free).
ALL_MECHANISMS: Final = (
    "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN",
)


def available_mechanisms(ctx: MechanismContext) -> list[str]:
    """The mechanisms to advertise (and accept) on a connection like ``ctx``.

    Nothing before TLS (DESIGN rule 8: SCRAM would be safe, but a client
    that sees AUTH= without TLS may also try PLAIN). -PLUS only where the
    tls-exporter value could be computed (auth/channel_binding.py).
    """
    if not ctx.secure:
        return []
    names = []
    for name in ALL_MECHANISMS:
        if name == "SCRAM-SHA-256-PLUS" and ctx.tls_exporter is None:
            continue
        if name in ("OAUTHBEARER", "XOAUTH2") and not ctx.oauth:
            continue
        names.append(name)
    return names


def create_mechanism(name: str, ctx: MechanismContext) -> SaslMechanism | None:
    """A fresh mechanism for ``name`` if it is offered in ``ctx``, else None."""
    name = name.upper()
    if name not in available_mechanisms(ctx):
        return None
    if name.startswith("SCRAM-"):
        from mailbag.auth.scram import ScramMechanism

        plus = name.endswith("-PLUS")
        return ScramMechanism(
            plus=plus,
            channel_binding=ctx.tls_exporter if plus else None,
            plus_offered=ctx.tls_exporter is not None,
        )
    if name in ("OAUTHBEARER", "XOAUTH2"):
        from mailbag.auth.oauth import OAuthBearerMechanism, XOAuth2Mechanism

        return OAuthBearerMechanism() if name == "OAUTHBEARER" else XOAuth2Mechanism()
    return new_mechanism(name)
