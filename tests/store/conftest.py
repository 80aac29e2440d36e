"""Fixtures for the store contract suite: one ``store`` fixture per backend
(only sqlite today; postgres adds a param), plus message builders."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mime_fallback import install  # noqa: E402

install()

from mailbag.store.api import INBOX, Account, MailboxInfo, Store  # noqa: E402
from mailbag.store.sqlite import SqliteStore  # noqa: E402

BACKENDS = ["sqlite"]

_counter = itertools.count(1)


def make_message(subject: str | None = None, body: str = "Hello world", **headers: str) -> bytes:
    """A small RFC 5322 message; unique unless subject and body are given."""
    if subject is None:
        subject = f"message {next(_counter)}"
    lines = [
        "From: Alice <alice@example.org>",
        "To: Bob <bob@example.org>",
        f"Subject: {subject}",
        "Date: Mon, 01 Jan 2024 10:00:00 +0000",
        "Message-ID: <" + subject.replace(" ", ".") + "@example.org>",
    ]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "data")
    else:  # pragma: no cover - future backends
        raise NotImplementedError(request.param)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def account(store: Store) -> Account:
    return await store.create_account("alice@example.org", "hash")


@pytest.fixture
async def inbox(store: Store, account: Account) -> MailboxInfo:
    box = await store.get_mailbox(account.id, INBOX)
    assert box is not None
    return box
