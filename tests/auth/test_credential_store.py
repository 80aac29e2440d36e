"""The credential part of the store (credential_ops.py) on the real SQLite
backend: app passwords, TOTP step claims, SCRAM secrets, the flag."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailbag.store.api import AccountCredentials, AlreadyExists, NotFound
from mailbag.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_credentials_default_and_update(store: SqliteStore) -> None:
    a = await store.create_account("alice", "h")
    assert await store.get_credentials(a.id) == AccountCredentials()
    await store.set_scram_credentials(a.id, "SCRAM-SHA-256$4096:x$y:z")
    await store.set_totp_secret(a.id, "JBSWY3DPEHPK3PXP")
    await store.set_require_second_factor(a.id, True)
    c = await store.get_credentials(a.id)
    assert c.scram_sha256 == "SCRAM-SHA-256$4096:x$y:z" and c.totp_secret == "JBSWY3DPEHPK3PXP"
    assert c.require_second_factor and "JBSWY3" not in repr(c)
    with pytest.raises(NotFound):
        await store.get_credentials(999)


async def test_totp_steps_are_claimed_once_and_only_forwards(store: SqliteStore) -> None:
    a = await store.create_account("alice", "h")
    assert await store.claim_totp_step(a.id, 100)
    assert not await store.claim_totp_step(a.id, 100)
    assert not await store.claim_totp_step(a.id, 99)
    assert await store.claim_totp_step(a.id, 101)
    await store.set_totp_secret(a.id, "NEWSECRET")      # a new secret resets the history
    assert await store.claim_totp_step(a.id, 50)


async def test_app_password_lifecycle(store: SqliteStore) -> None:
    a = await store.create_account("alice", "h")
    b = await store.create_account("bob", "h")
    phone = await store.add_app_password(a.id, "phone", "sel1", "hash1")
    await store.add_app_password(b.id, "phone", "sel1", "hashb")       # labels are per account
    with pytest.raises(AlreadyExists):
        await store.add_app_password(a.id, "phone", "sel2", "hash2")
    assert [p.id for p in await store.app_password_candidates(a.id, "sel1")] == [phone.id]
    assert await store.app_password_candidates(a.id, "other") == []

    await store.record_app_password_use(phone.id, "192.0.2.9", new_hash="rehashed")
    [listed] = await store.list_app_passwords(a.id)
    assert listed.last_ip == "192.0.2.9" and listed.last_used is not None
    assert listed.hash == "rehashed" and "rehashed" not in repr(listed)

    assert await store.revoked_app_passwords([phone.id, 12345]) == {12345}
    revoked = await store.revoke_app_password(a.id, "phone")
    assert revoked.revoked is not None
    assert await store.revoked_app_passwords([phone.id]) == {phone.id}
    assert await store.app_password_candidates(a.id, "sel1") == []
    assert await store.list_app_passwords(a.id) == []
    assert len(await store.list_app_passwords(a.id, include_revoked=True)) == 1
    with pytest.raises(NotFound):
        await store.revoke_app_password(a.id, "phone")
    # The label is free again.
    await store.add_app_password(a.id, "phone", "sel3", "hash3")


async def test_app_passwords_go_with_the_account(store: SqliteStore) -> None:
    a = await store.create_account("alice", "h")
    ap = await store.add_app_password(a.id, "phone", "s", "h")
    await store.delete_account(a.id)
    assert await store.revoked_app_passwords([ap.id]) == {ap.id}
