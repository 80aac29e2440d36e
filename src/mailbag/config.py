"""Server configuration: a TOML file (tomllib) read into typed frozen dataclasses.

Every key is documented in docs/config.md; docs/mailbag.example.toml is a
complete example. Unknown keys and values of the wrong type are errors that
name the key, so a typo never silently falls back to a default.

Relative paths in a config file are resolved against the directory holding
that file, so a config works the same whatever the current directory is.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
    max_connections: int = 1000
    max_connections_per_ip: int = 50
    preauth_timeout: float = 60.0               # seconds to authenticate
    idle_timeout: float = 1800.0                # autologout (RFC 9051 §5.4: >= 30 min)


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost; the defaults are RFC 9106's second recommended
    ("low-memory") profile, as argon2-cffi ships it."""

    time_cost: int = 3
    memory_cost: int = 65536                    # KiB
    parallelism: int = 4


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("var")
    imap: ListenerConfig = field(default_factory=ListenerConfig)
    imaps: ListenerConfig = field(default_factory=lambda: ListenerConfig(port=1993))
    tls: TlsConfig = field(default_factory=TlsConfig)
    limits: Limits = field(default_factory=Limits)
    # Loopback connections count as secure (no STARTTLS needed), like Dovecot.
    secure_loopback: bool = True
    argon2: Argon2Params = field(default_factory=Argon2Params)
    log_level: str = "INFO"


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
    for name, listener in (("imap", c.imap), ("imaps", c.imaps)):
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
    for fname in ("preauth_timeout", "idle_timeout"):
        if getattr(lim, fname) <= 0:
            raise ConfigError(f"limits.{fname}: must be positive, got {getattr(lim, fname)}")
    a = c.argon2
    if a.time_cost < 1:
        raise ConfigError(f"argon2.time_cost: must be at least 1, got {a.time_cost}")
    if not 1 <= a.parallelism <= 255:
        raise ConfigError(f"argon2.parallelism: must be 1..255, got {a.parallelism}")
    if a.memory_cost < 8 * a.parallelism:
        raise ConfigError(
            f"argon2.memory_cost: must be at least 8 * parallelism KiB, got {a.memory_cost}"
        )
    if c.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"log_level: must be one of {', '.join(LOG_LEVELS)}, got {c.log_level!r}"
        )
