import dataclasses
import logging
from typing import Any

import pytest

from mailbag.auth.authenticator import Authenticator
from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.ratelimit import LoginRateLimiter, RateLimitPolicy
from mailbag.config import Argon2Params
from mailbag.store.api import Account

FAST = Argon2Params(time_cost=1, memory_cost=64, parallelism=1)


class AccountsOnly:
    """The account half of the Store protocol, in memory."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.rehashed: list[tuple[int, str]] = []

    async def get_account(self, name: str) -> Account | None:
        return self.accounts.get(name)

    async def set_password_hash(self, account_id: int, password_hash: str) -> None:
        self.rehashed.append((account_id, password_hash))
        for name, a in self.accounts.items():
            if a.id == account_id:
                self.accounts[name] = dataclasses.replace(a, password_hash=password_hash)


class NoSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, s: float) -> None:
        self.slept.append(s)


@pytest.fixture
def setup(caplog: pytest.LogCaptureFixture) -> tuple[Authenticator, AccountsOnly, NoSleep]:
    caplog.set_level(logging.INFO, logger="mailbag.auth")
    store = AccountsOnly()
    hasher = PasswordHasher(FAST)
    store.accounts["alice"] = Account(1, "alice", hasher.hash(b"right"))
    store.accounts["dora"] = Account(2, "dora", hasher.hash(b"right"), disabled=True)
    sleep = NoSleep()
    limiter = LoginRateLimiter(RateLimitPolicy(), sleep=sleep)
    auth = Authenticator(store, hasher, limiter=limiter)  # type: ignore[arg-type]
    return auth, store, sleep


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mailbag.auth"]


async def test_good_login_case_insensitive(setup: Any, caplog: pytest.LogCaptureFixture) -> None:
    auth, _, _ = setup
    account = await auth.login("ALICE", b"right", "192.0.2.1", mech="PLAIN")
    assert account is not None and account.name == "alice"
    assert lines(caplog) == ["auth-ok rip=192.0.2.1 user=ALICE proto=imap mech=PLAIN cred=password"]


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("alice", b"wrong", "bad-password"),
        ("mallory", b"right", "unknown-user"),
        ("dora", b"right", "disabled"),
        ("bad name", b"x", "bad-username"),
        ("", b"x", "bad-username"),
    ],
)
async def test_failures_look_alike_and_are_logged(
    setup: Any, caplog: pytest.LogCaptureFixture, user: str, password: bytes, reason: str
) -> None:
    auth, _, _ = setup
    assert await auth.login(user, password, "192.0.2.1") is None
    (line,) = lines(caplog)
    assert line.startswith("auth-failed rip=192.0.2.1 user=")
    assert line.endswith(f" proto=imap mech=LOGIN reason={reason}")
    assert "right" not in line and "wrong" not in line


async def test_dummy_verify_for_unknown_users(setup: Any) -> None:
    auth, _, _ = setup
    called: list[bytes] = []
    real = auth.hasher.dummy_verify

    def spy(pw: bytes) -> None:
        called.append(pw)
        real(pw)

    auth.hasher.dummy_verify = spy
    await auth.login("mallory", b"guess", "192.0.2.1")
    assert called == [b"guess"]


async def test_rehash_on_login_when_parameters_changed(setup: Any) -> None:
    auth, store, _ = setup
    stronger = PasswordHasher(Argon2Params(time_cost=2, memory_cost=64, parallelism=1))
    auth.hasher = stronger
    account = await auth.login("alice", b"right", "192.0.2.1")
    assert account is not None
    assert store.rehashed and store.rehashed[0][0] == 1
    assert "t=2" in account.password_hash and stronger.verify(account.password_hash, b"right")
    store.rehashed.clear()
    await auth.login("alice", b"right", "192.0.2.1")
    assert store.rehashed == []


async def test_repeated_failures_are_delayed_then_blocked(
    setup: Any, caplog: pytest.LogCaptureFixture
) -> None:
    auth, _, sleep = setup
    for _ in range(30):
        assert await auth.login("alice", b"wrong", "192.0.2.1") is None
    assert sleep.slept[:4] == [1, 2, 4, 8]
    # Blocked now, even with the right password.
    assert await auth.login("alice", b"right", "192.0.2.1") is None
    last = lines(caplog)[-1]
    assert last.startswith("auth-blocked rip=192.0.2.1 user=alice proto=imap mech=LOGIN scope=ip")
    # Another address may still log in (after a delay from the account's count).
    assert await auth.login("alice", b"right", "198.51.100.1") is not None
