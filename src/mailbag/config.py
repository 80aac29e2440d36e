"""Server configuration: a TOML file (tomllib) read into typed frozen dataclasses.

Every key is documented in docs/config.md; docs/mailbag.example.toml is a
complete example. Unknown keys and values of the wrong type are errors that
name the key, so a typo never silently falls back to a default.

Relative paths in a config file are resolved against the directory holding
that file, so a config works the same whatever the current directory is.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The non-synchronizing literal size LITERAL- promises (RFC 7888 §5).
NONSYNC_LITERAL_MINUS = 4096


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 1143


@dataclass(frozen=True, slots=True)
class TlsConfig:
    # Both None: a self-signed certificate is generated under data_dir/tls/.
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_line: int = 65536                       # bytes of one command line
    max_literal: int = 64 * 1024 * 1024         # bytes of one literal once logged in
    preauth_max_literal: int = 8 * 1024         # before authentication
    # Largest non-synchronizing literal {n+}: 0 is no limit of its own
    # (LITERAL+), 4096 advertises LITERAL- instead (RFC 7888 §5).
    nonsync_literal_max: int = 0
    max_connections: int = 1000
    max_connections_per_ip: int = 50
    preauth_timeout: float = 60.0               # seconds to authenticate
    idle_timeout: float = 1800.0                # autologout (RFC 9051 §5.4: >= 30 min)
    # Days an expunge is remembered for CONDSTORE/QRESYNC resync (RFC 7162):
    # a device offline for longer is sent every UID that is gone, not just
    # the ones expunged since it left. 0: remember forever.
    expunge_history_days: float = 90.0


def _default_lanes() -> int:
    # Lanes are hashed on as many threads: as many lanes as cores (up to
    # RFC 9106's 4) gives the lowest login latency for the same memory and
    # time cost; more lanes than cores only add thread switching.
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost; the defaults are RFC 9106's second recommended
    ("low-memory") profile (t=3, 64 MiB), with one lane per core up to 4."""

    time_cost: int = 3
    memory_cost: int = 65536                    # KiB
    parallelism: int = field(default_factory=_default_lanes)


@dataclass(frozen=True, slots=True)
class LmtpConfig:
    """LMTP delivery (RFC 2033) from an MTA; see docs/postfix.md."""

    unix: bool = True                           # listen on the Unix socket
    socket: Path | None = None                  # None: <data_dir>/lmtp.sock
    # Who may connect is decided by the socket's directory and mode; the MTA's
    # delivery agent runs as another user (postfix), so like Dovecot: 0666.
    socket_mode: int = 0o666
    tcp: bool = False                           # listen on host:port as well
    host: str = "127.0.0.1"
    port: int = 2424
    hostname: str = ""                          # greeting, Received:; "": gethostname()
    # Empty: every domain is local (the MTA already decided the mail is ours).
    local_domains: tuple[str, ...] = ()
    recipient_delimiter: str = "+"              # "": no plus-addressing
    detail_folders: bool = True                 # alice+lists@ -> folder "lists" if it exists
    max_message_size: int = 64 * 1024 * 1024    # bytes; announced as SIZE
    max_recipients: int = 1000                  # per transaction
    quota_tempfail: bool = False                # over quota: 452 4.2.2, not 552 5.2.2


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Credentials besides argon2 (docs/auth.md)."""

    # PBKDF2 rounds of SCRAM-SHA-256 secrets made when a password is set
    # (RFC 7677 §4: at least 4096); clients pay this cost on every login.
    scram_iterations: int = 4096
    # Seconds between checks for revoked app passwords while a session that
    # logged in with one is open (revocation from the CLI closes it).
    revocation_check: float = 2.0


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Failed-login limiting (auth/ratelimit.py; docs/config.md [ratelimit])."""

    free_failures: int = 3                      # failures before delays start
    base_delay: float = 1.0                     # seconds; doubles per further failure
    max_delay: float = 15.0
    window: float = 900.0                       # seconds a failure is remembered
    block_per_ip: int = 30                      # failures from one address: refused
    block_per_network: int = 150                # ... from one /24 (IPv4) or /64 (IPv6)
    network_free_failures: int = 10             # failures in a network before delays
    block_per_account: int = 100                # failures against one name: refused
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    # Server-wide failures within spray_window that turn on spray mode: every
    # source with a recent failure is delayed. 0 turns the global view off.
    spray_threshold: int = 200
    spray_window: float = 300.0
    max_entries: int = 100_000                  # addresses/accounts remembered


@dataclass(frozen=True, slots=True)
class OAuthIssuer:
    """One identity provider whose signed JWT access tokens are accepted."""

    issuer: str = ""                            # must equal the token's "iss"
    jwks_file: Path | None = None               # its public keys (JSON Web Key Set)
    audience: tuple[str, ...] = ()              # the token's "aud" must name one
    username_claim: str = ""                    # "": oauth.username_claim
    strip_domain: str = ""                      # "example.org": alice@example.org -> alice


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """OAUTHBEARER (RFC 7628) and XOAUTH2; off while ``issuers`` is empty."""

    issuers: tuple[OAuthIssuer, ...] = ()
    username_claim: str = "email"               # the claim naming the account
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway: float = 60.0                        # seconds of clock skew for exp/nbf/iat


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("var")
    imap: ListenerConfig = field(default_factory=ListenerConfig)
    imaps: ListenerConfig = field(default_factory=lambda: ListenerConfig(port=1993))
    # POP3 (RFC 1939): plain with STLS, and implicit TLS; 110/995 in production.
    pop3: ListenerConfig = field(default_factory=lambda: ListenerConfig(port=1110))
    pop3s: ListenerConfig = field(default_factory=lambda: ListenerConfig(port=1995))
    tls: TlsConfig = field(default_factory=TlsConfig)
    limits: Limits = field(default_factory=Limits)
    # Loopback connections count as secure (no STARTTLS needed), like Dovecot.
    secure_loopback: bool = True
    argon2: Argon2Params = field(default_factory=Argon2Params)
    log_level: str = "INFO"
    lmtp: LmtpConfig = field(default_factory=LmtpConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)


def load_config(path: Path | None) -> Config:
    """Read ``path`` (None: all defaults) and validate it."""
    if path is None:
        config = Config()
    else:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        try:
            config = _build(Config(), raw, "", path.parent)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    try:
        _validate(config)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
    return config


def _build(default: Any, raw: dict[str, Any], prefix: str, base: Path) -> Any:
    """``default`` with the keys of ``raw`` replaced: a partial [imaps] table
    keeps the imaps defaults (port 1993), not those of ListenerConfig()."""
    cls = type(default)
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
            raise ConfigError(f"unknown key {prefix}{key!s} in {where}")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        kwargs[key] = _convert(hints[key], getattr(default, key), value, prefix + key, base)
    return dataclasses.replace(default, **kwargs)


def _convert(hint: Any, default: Any, value: Any, key: str, base: Path) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table [{key}], got {value!r}")
        return _build(default, value, key + ".", base)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        # bool is an int in Python; `port = true` is still a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number of seconds, got {value!r}")
        return float(value)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and dataclasses.is_dataclass(args[0]):
        # An array of tables ([[oauth.issuers]]): each starts from the defaults.
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{key}: expected an array of tables [[{key}]], got {value!r}")
        item_cls: Any = args[0]
        return tuple(_build(item_cls(), v, f"{key}[{i}].", base) for i, v in enumerate(value))
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if hint in (Path, Path | None):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a file or directory path, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p
    raise AssertionError(f"config field {key} has unsupported type {hint!r}")


def _validate(c: Config) -> None:
    for name, listener in (("imap", c.imap), ("imaps", c.imaps),
                           ("pop3", c.pop3), ("pop3s", c.pop3s)):
        # Port 0 asks the OS for a free port: handy for tests.
        if not 0 <= listener.port <= 65535:
            raise ConfigError(f"{name}.port: must be 0..65535, got {listener.port}")
    if (c.tls.cert_file is None) != (c.tls.key_file is None):
        raise ConfigError("tls.cert_file and tls.key_file: set both or neither")
    lim = c.limits
    for fname in ("max_line", "max_literal", "max_connections", "max_connections_per_ip"):
        if getattr(lim, fname) < 1:
            raise ConfigError(f"limits.{fname}: must be at least 1, got {getattr(lim, fname)}")
    if lim.max_line < 1024:
        # RFC 9051 §4 asks servers to accept lines of at least 8000 octets; far
        # below 1 KiB not even a LOGIN with a long password fits.
        raise ConfigError(f"limits.max_line: must be at least 1024, got {lim.max_line}")
    if not 0 <= lim.preauth_max_literal <= lim.max_literal:
        raise ConfigError(
            "limits.preauth_max_literal: must be between 0 and limits.max_literal, "
            f"got {lim.preauth_max_literal}"
        )
    if lim.nonsync_literal_max != 0 and lim.nonsync_literal_max < NONSYNC_LITERAL_MINUS:
        # LITERAL- and IMAP4rev2 clients (RFC 9051 §4.3) may send non-synchronizing
        # literals of up to 4096 octets without asking; refusing those breaks them.
        raise ConfigError(
            "limits.nonsync_literal_max: must be 0 (no limit, LITERAL+) or at least "
            f"{NONSYNC_LITERAL_MINUS} (RFC 7888 LITERAL-), got {lim.nonsync_literal_max}"
        )
    for fname in ("preauth_timeout", "idle_timeout"):
        if getattr(lim, fname) <= 0:
            raise ConfigError(f"limits.{fname}: must be positive, got {getattr(lim, fname)}")
    if lim.expunge_history_days < 0:
        raise ConfigError("limits.expunge_history_days: must be 0 (forever) or more, "
                          f"got {lim.expunge_history_days}")
    a = c.argon2
    if a.time_cost < 1:
        raise ConfigError(f"argon2.time_cost: must be at least 1, got {a.time_cost}")
    if not 1 <= a.parallelism <= 255:
        raise ConfigError(f"argon2.parallelism: must be 1..255, got {a.parallelism}")
    if a.memory_cost < 8 * a.parallelism:
        raise ConfigError(
            f"argon2.memory_cost: must be at least 8 * parallelism KiB, got {a.memory_cost}"
        )
    _validate_lmtp(c.lmtp)
    _validate_auth(c.auth, c.oauth)
    _validate_ratelimit(c.ratelimit)
    if c.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"log_level: must be one of {', '.join(LOG_LEVELS)}, got {c.log_level!r}"
        )


def _validate_lmtp(m: LmtpConfig) -> None:
    if not 0 <= m.port <= 65535:
        raise ConfigError(f"lmtp.port: must be 0..65535, got {m.port}")
    if not 0 <= m.socket_mode <= 0o777:
        raise ConfigError(f"lmtp.socket_mode: must be 0o000..0o777, got {m.socket_mode:#o}")
    if m.max_message_size < 1024:
        raise ConfigError(f"lmtp.max_message_size: must be at least 1024, got {m.max_message_size}")
    if m.max_recipients < 1:
        raise ConfigError(f"lmtp.max_recipients: must be at least 1, got {m.max_recipients}")
    if len(m.recipient_delimiter) > 1 or m.recipient_delimiter.isalnum() \
            or m.recipient_delimiter in ("@", " "):
        raise ConfigError(
            f"lmtp.recipient_delimiter: one character such as + or -, got {m.recipient_delimiter!r}"
        )
    for domain in m.local_domains:
        if not domain or "@" in domain or " " in domain:
            raise ConfigError(f"lmtp.local_domains: not a domain: {domain!r}")


def _validate_ratelimit(r: RateLimitConfig) -> None:
    for fname in ("free_failures", "network_free_failures", "spray_threshold"):
        if getattr(r, fname) < 0:
            raise ConfigError(f"ratelimit.{fname}: must not be negative, got {getattr(r, fname)}")
    for fname in ("block_per_ip", "block_per_network", "block_per_account", "max_entries"):
        if getattr(r, fname) < 1:
            raise ConfigError(f"ratelimit.{fname}: must be at least 1, got {getattr(r, fname)}")
    for fname in ("base_delay", "max_delay"):
        if getattr(r, fname) < 0:
            raise ConfigError(f"ratelimit.{fname}: must not be negative, got {getattr(r, fname)}")
    for fname in ("window", "spray_window"):
        if getattr(r, fname) <= 0:
            raise ConfigError(f"ratelimit.{fname}: must be positive, got {getattr(r, fname)}")
    if not 8 <= r.ipv4_prefix <= 32:
        raise ConfigError(f"ratelimit.ipv4_prefix: must be 8..32, got {r.ipv4_prefix}")
    if not 16 <= r.ipv6_prefix <= 128:
        raise ConfigError(f"ratelimit.ipv6_prefix: must be 16..128, got {r.ipv6_prefix}")


# Asymmetric algorithms only: an HMAC key in a JWKS file would let anyone who
# can read the file mint tokens, and "none" is no signature at all.
OAUTH_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                    "ES512", "EdDSA")


def _validate_auth(a: AuthConfig, o: OAuthConfig) -> None:
    if a.scram_iterations < 4096:
        raise ConfigError(
            f"auth.scram_iterations: must be at least 4096 (RFC 7677), got {a.scram_iterations}"
        )
    if a.revocation_check <= 0:
        raise ConfigError(f"auth.revocation_check: must be positive, got {a.revocation_check}")
    for alg in o.algorithms:
        if alg not in OAUTH_ALGORITHMS:
            raise ConfigError(
                f"oauth.algorithms: {alg!r} is not one of {', '.join(OAUTH_ALGORITHMS)}"
            )
    if o.leeway < 0:
        raise ConfigError(f"oauth.leeway: must not be negative, got {o.leeway}")
    if not o.username_claim:
        raise ConfigError("oauth.username_claim: must not be empty")
    seen = set()
    for i, iss in enumerate(o.issuers):
        where = f"oauth.issuers[{i}]"
        if not iss.issuer:
            raise ConfigError(f"{where}.issuer: required (the tokens' \"iss\" value)")
        if iss.issuer in seen:
            raise ConfigError(f"{where}.issuer: {iss.issuer!r} is listed twice")
        seen.add(iss.issuer)
        if iss.jwks_file is None:
            raise ConfigError(f"{where}.jwks_file: required (the issuer's JSON Web Key Set)")
        if not iss.audience:
            raise ConfigError(f"{where}.audience: required (a list of accepted \"aud\" values)")
