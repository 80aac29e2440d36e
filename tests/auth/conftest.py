"""A real server with credentials features on: OAuth issuers (a JWKS file
written here from keys made here) and a fast revocation check."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from jwt_support import AUDIENCE, ISSUER, Provider  # noqa: E402
from testserver import TestServer, serving  # noqa: E402

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}


@pytest.fixture(scope="session")
def idp() -> Provider:
    return Provider()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, idp: Provider) -> Iterator[TestServer]:
    data = tmp_path_factory.mktemp("mailbag-auth")
    jwks = idp.write_jwks(data / "idp.jwks.json")
    srv = TestServer(data)
    srv.extra_config = (
        "[auth]\nrevocation_check = 0.1\n"
        "[[oauth.issuers]]\n"
        f'issuer = "{ISSUER}"\njwks_file = "{jwks}"\naudience = ["{AUDIENCE}"]\n'
        'strip_domain = "example.org"\n'
    )
    with serving(srv, USERS):
        yield srv
