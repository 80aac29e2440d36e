"""Shared fixtures: a real mailbag server on free loopback ports."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from testserver import TestServer  # noqa: E402

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """One server per test module, with users alice and bob."""
    srv = TestServer(tmp_path_factory.mktemp("mailbag"))
    srv.write_config()
    for name, password in USERS.items():
        srv.add_user(name, password)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if srv.log_text().count("Traceback"):
            print(srv.log_text())
        shutil.rmtree(srv.data_dir, ignore_errors=True)
