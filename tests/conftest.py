"""Shared fixtures: a real mailbag server on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from testserver import TestServer, serving  # noqa: E402

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """One server per test module, with users alice and bob."""
    with serving(TestServer(tmp_path_factory.mktemp("mailbag")), USERS) as srv:
        yield srv
