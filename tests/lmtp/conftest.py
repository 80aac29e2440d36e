"""An LMTP-enabled server per test module: TCP on a free port and the Unix
socket under its data directory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from testserver import TestServer, free_port, serving  # noqa: E402

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
from lmtp_support import MAX_SIZE  # noqa: E402


@pytest.fixture(scope="module")
def lmtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    srv = TestServer(tmp_path_factory.mktemp("lmtp"))
    srv.lmtp_port = free_port()  # type: ignore[attr-defined]
    srv.extra_config = (
        f"[lmtp]\ntcp = true\nport = {srv.lmtp_port}\n"  # type: ignore[attr-defined]
        f'hostname = "mx.test"\nmax_message_size = {MAX_SIZE}\n'
    )
    with serving(srv, USERS):
        yield srv
