import os
import re
from pathlib import Path

import pytest

from mailbag.config import (
    Argon2Params,
    Config,
    ConfigError,
    Limits,
    ListenerConfig,
    TlsConfig,
    load_config,
)

EXAMPLE = Path(__file__).parent.parent / "docs" / "mailbag.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mailbag.toml"
    p.write_text(text)
    return p


def test_defaults() -> None:
    c = load_config(None)
    assert c.data_dir == Path("var")
    assert c.imap == ListenerConfig(True, "127.0.0.1", 1143)
    assert c.imaps.port == 1993
    assert c.limits.max_literal == 64 * 1024 * 1024
    assert c.limits.preauth_max_literal == 8192
    assert c.limits.idle_timeout == 1800.0
    assert c.secure_loopback is True
    assert c.tls.cert_file is None
    lanes = max(1, min(4, os.cpu_count() or 1))
    assert (c.argon2.time_cost, c.argon2.memory_cost, c.argon2.parallelism) == (3, 65536, lanes)


def test_example_file_is_valid_and_equals_defaults(tmp_path: Path) -> None:
    c = load_config(EXAMPLE)
    assert c == Config(data_dir=EXAMPLE.parent / "var")


def test_example_documents_every_key() -> None:
    doc = (EXAMPLE.parent / "config.md").read_text()
    import dataclasses

    def keys(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    for cls in (Config, ListenerConfig, TlsConfig, Limits, Argon2Params):
        for name in keys(cls):
            assert f"`{name}`" in doc or f"`[{name}]`" in doc, name
    example = EXAMPLE.read_text()
    for name in keys(Config) + keys(ListenerConfig) + keys(Limits) + keys(Argon2Params):
        assert re.search(rf"^#? ?(\[{name}\]|{name} =)", example, re.M), name


def test_values_and_relative_paths(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
data_dir = "data"
log_level = "debug"
secure_loopback = false
[imap]
enabled = false
port = 0
[imaps]
host = "::"
[tls]
cert_file = "/etc/ssl/c.pem"
key_file = "k.pem"
[limits]
idle_timeout = 3600
preauth_timeout = 2.5
""",
    )
    c = load_config(p)
    assert c.data_dir == tmp_path / "data"
    assert c.imap == ListenerConfig(False, "127.0.0.1", 0)
    assert c.imaps == ListenerConfig(True, "::", 1993)
    assert c.tls.cert_file == Path("/etc/ssl/c.pem") and c.tls.key_file == tmp_path / "k.pem"
    assert c.limits.idle_timeout == 3600.0 and c.limits.preauth_timeout == 2.5
    assert c.secure_loopback is False and c.log_level == "debug"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dat_dir = 'x'", "unknown key dat_dir in the top level"),
        ("[limits]\nmax_lien = 5", "unknown key limits.max_lien in [limits]"),
        ("[smtp]\nport = 1", "unknown key smtp"),
        ("[imap]\nport = '143'", "imap.port: expected an integer, got '143'"),
        ("[imap]\nport = true", "imap.port: expected an integer"),
        ("[imap]\nport = 70000", "imap.port: must be 0..65535, got 70000"),
        ("[imap]\nenabled = 1", "imap.enabled: expected true or false"),
        ("imap = 5", "imap: expected a table"),
        ("data_dir = 5", "data_dir: expected a file or directory path"),
        ("[tls]\ncert_file = 'c.pem'", "set both or neither"),
        ("[limits]\nmax_line = 10", "limits.max_line: must be at least 1024"),
        ("[limits]\npreauth_max_literal = 100000000", "limits.preauth_max_literal"),
        ("[limits]\nidle_timeout = 0", "limits.idle_timeout: must be positive"),
        ("[limits]\nidle_timeout = 'long'", "limits.idle_timeout: expected a number"),
        ("[argon2]\nmemory_cost = 4", "argon2.memory_cost"),
        ("[argon2]\nparallelism = 0", "argon2.parallelism"),
        ("log_level = 'loud'", "log_level: must be one of"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert message in str(e.value)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_config_is_frozen() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        load_config(None).log_level = "DEBUG"  # type: ignore[misc]
