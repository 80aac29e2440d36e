"""The [pop3] and [pop3s] config tables (docs/config.md)."""

from __future__ import annotations

import pytest

from mailbag.config import ConfigError, ListenerConfig, load_config


def test_defaults_work_without_root():
    c = load_config(None)
    assert c.pop3 == ListenerConfig(True, "127.0.0.1", 1110)
    assert c.pop3s == ListenerConfig(True, "127.0.0.1", 1995)


def test_partial_tables_keep_their_own_defaults(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[pop3]\nenabled = false\n[pop3s]\nhost = "::"\n')
    c = load_config(path)
    assert c.pop3 == ListenerConfig(False, "127.0.0.1", 1110)
    assert c.pop3s == ListenerConfig(True, "::", 1995)


@pytest.mark.parametrize("text, message", [
    ("[pop3s]\nport = 70000\n", "pop3s.port: must be 0..65535, got 70000"),
    ("[pop3]\nprot = 110\n", "unknown key pop3.prot in [pop3]"),
    ('[pop3]\nport = "110"\n', "pop3.port: expected an integer"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)
