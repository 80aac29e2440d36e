"""The global and network views of the login rate limiter, and the rule that
a device holding an app password is not locked out by an attacker's failures
(auth/ratelimit.py, auth/authenticator.py). Authenticator tests run on the
real SQLite store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailbag.auth import app_passwords
from mailbag.auth.authenticator import Authenticator
from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.ratelimit import Blocked, LoginRateLimiter, RateLimitPolicy, network_key
from mailbag.config import Argon2Params, Config, RateLimitConfig
from mailbag.store.sqlite import SqliteStore

FAST = Argon2Params(time_cost=1, memory_cost=64, parallelism=1)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def limiter(**policy: Any) -> tuple[LoginRateLimiter, FakeTime]:
    t = FakeTime()
    return LoginRateLimiter(RateLimitPolicy(**policy), clock=t.clock, sleep=t.sleep), t


def test_network_keys() -> None:
    assert network_key("192.0.2.77") == "192.0.2.0/24"
    assert network_key("::ffff:192.0.2.77") == "192.0.2.0/24"
    assert network_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network_key("fe80::1%eth0") == "fe80::/64"
    assert network_key("local") == "local"
    assert network_key("10.1.2.3", ipv4_prefix=16) == "10.1.0.0/16"


async def test_a_network_is_delayed_then_blocked_as_a_whole() -> None:
    rl, _ = limiter(network_free_failures=10, block_per_network=20)
    for i in range(10):                     # one failure each: no address is slowed
        rl.record_failure(f"192.0.2.{i}", f"user{i}")
    assert rl.check("192.0.2.200", "fresh") == 1.0          # same /24, never failed
    assert rl.check("198.51.100.1", "fresh") == 0.0         # another network
    for i in range(10, 20):
        rl.record_failure(f"192.0.2.{i}", f"user{i}")
    with pytest.raises(Blocked) as e:
        rl.check("192.0.2.201", "fresh")
    assert e.value.scope == "network"


async def test_ipv6_addresses_aggregate_per_64() -> None:
    rl, _ = limiter(network_free_failures=2, block_per_network=5)
    for i in range(5):
        rl.record_failure(f"2001:db8::{i + 1:x}", "x")
    with pytest.raises(Blocked):
        rl.check("2001:db8::ffff:1", "y")
    assert rl.check("2001:db8:0:1::1", "y") == 0.0


async def test_spray_mode_delays_every_failing_source_but_not_fresh_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailbag.auth")
    rl, t = limiter(spray_threshold=50, spray_window=60)
    # 50 different networks, one guess each on a different account: below
    # every per-address, per-network and per-account threshold.
    for i in range(49):
        rl.record_failure(f"10.{i}.0.1", f"user{i}")
    assert rl.check("10.0.0.1", "user0") == 0.0             # not yet
    rl.record_failure("10.49.0.1", "user49")
    assert rl.spraying()
    assert rl.check("10.0.0.1", "someone") == 1.0           # failed once: delayed
    assert rl.check("203.0.113.5", "user7") == 1.0          # a sprayed account: delayed
    assert rl.check("203.0.113.5", "untouched") == 0.0      # nothing failed: full speed
    t.now += 61
    assert not rl.spraying()
    assert rl.check("10.0.0.1", "someone") == 0.0
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events == ["auth-spray-on", "auth-spray-off"]


async def test_spray_threshold_zero_turns_the_global_view_off() -> None:
    rl, _ = limiter(spray_threshold=0)
    for i in range(1000):
        rl.record_failure(f"10.{i // 256}.{i % 256}.1", f"user{i}")
    assert not rl.spraying()
    assert rl.check("10.0.0.1", "someone") == 0.0


async def test_devices_are_judged_by_their_address_only() -> None:
    rl, _ = limiter(block_per_account=5, block_per_ip=8)
    for i in range(5):
        rl.record_failure(f"192.0.2.{i}", "alice")
    with pytest.raises(Blocked):
        rl.check("198.51.100.9", "alice")
    assert rl.check("198.51.100.9", "alice", device=True) == 0.0
    for _ in range(8):
        rl.record_failure("198.51.100.9", "mallory")
    with pytest.raises(Blocked) as e:
        rl.check("198.51.100.9", "alice", device=True)       # the address still counts
    assert e.value.scope == "ip"


def test_policy_from_config_takes_every_key() -> None:
    cfg = RateLimitConfig(block_per_ip=7, spray_threshold=9, ipv6_prefix=48)
    p = RateLimitPolicy.from_config(cfg)
    assert (p.block_per_ip, p.spray_threshold, p.ipv6_prefix) == (7, 9, 48)
    assert set(RateLimitConfig.__dataclass_fields__) == set(RateLimitPolicy.__dataclass_fields__)


# ------------------------------------------------------------ authenticator


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting how often argon2 runs."""

    def __init__(self) -> None:
        super().__init__(FAST, workers=1)
        self.runs = 0

    def verify(self, hash: str, password: bytes) -> bool:
        self.runs += 1
        return super().verify(hash, password)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Authenticator, SqliteStore, str, FakeTime]]:
    store = SqliteStore(tmp_path / "data")
    await store.open()
    hasher = CountingHasher()
    alice = await store.create_account("alice", hasher.hash(b"alice-pw"))
    await store.create_account("bob", hasher.hash(b"bob-pw"))
    secret = app_passwords.generate()
    canonical = app_passwords.normalize(secret.encode())
    assert canonical is not None
    await store.add_app_password(alice.id, "phone", app_passwords.selector(canonical),
                                 hasher.hash(canonical.encode()))
    t = FakeTime()
    rl = LoginRateLimiter(RateLimitPolicy(block_per_account=10, block_per_network=1000,
                                          spray_threshold=0),
                          clock=t.clock, sleep=t.sleep)
    auth = Authenticator(store, hasher, limiter=rl)
    hasher.dummy_verify(b"warm up")          # make the dummy hash outside the counts
    try:
        yield auth, store, secret, t
    finally:
        hasher.close()
        await store.close()


async def test_app_password_device_survives_an_account_block(env: Any) -> None:
    auth, _, secret, _ = env
    for i in range(10):
        assert await auth.login("alice", b"guess", f"203.0.113.{i}") is None
    # The main password is refused now, from anywhere ...
    assert await auth.login("alice", b"alice-pw", "198.51.100.1") is None
    # ... but the phone's app password still works, and a wrong app password does not.
    result = await auth.login_password("alice", secret.encode(), "198.51.100.1")
    assert result is not None and result.app_password_id is not None
    wrong = app_passwords.generate().encode()
    assert await auth.login_password("alice", wrong, "198.51.100.1") is None


async def test_app_password_device_on_a_blocked_address_is_refused(env: Any) -> None:
    auth, _, secret, _ = env
    for i in range(30):
        await auth.login(f"user{i}", b"guess", "203.0.113.1")
    assert await auth.login_password("alice", secret.encode(), "203.0.113.1") is None


async def test_an_app_password_device_is_not_delayed_by_the_accounts_failures(env: Any) -> None:
    auth, _, secret, t = env
    for i in range(6):
        await auth.login("alice", b"guess", f"203.0.113.{i}")
    t.slept.clear()
    assert await auth.login_password("alice", secret.encode(), "198.51.100.1") is not None
    assert t.slept == []
    assert await auth.login("alice", b"alice-pw", "198.51.100.2") is not None
    assert t.slept == [8.0]                 # 6 failures on the account: 2**3


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("alice", b"wrong"),                      # real account, wrong password
        ("nobody", b"wrong"),                     # unknown account
        ("alice", b"abcd-efgh-jkmn-pqrs-tuvw"),   # app-password shaped, no match
        ("nobody", b"abcd-efgh-jkmn-pqrs-tuvw"),
        ("bad name", b"wrong"),                   # not even a valid name
    ],
)
async def test_every_failure_costs_exactly_one_argon2_run(
    env: Any, user: str, password: bytes
) -> None:
    auth, _, _, _ = env
    hasher = auth.hasher
    before = hasher.runs
    assert await auth.login(user, password, "192.0.2.1") is None
    assert hasher.runs - before == 1


async def test_blocked_attempts_cost_no_argon2_for_real_and_unknown_names(env: Any) -> None:
    auth, _, _, _ = env
    for i in range(30):
        await auth.login(f"user{i}", b"guess", "203.0.113.1")
    hasher = auth.hasher
    before = hasher.runs
    assert await auth.login("alice", b"alice-pw", "203.0.113.1") is None
    assert await auth.login("nobody", b"x", "203.0.113.1") is None
    assert hasher.runs == before


def test_server_config_reaches_the_limiter(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    cfg = Config(ratelimit=RateLimitConfig(block_per_ip=4, spray_threshold=0))
    auth = Authenticator(store, PasswordHasher(FAST), config=cfg)
    assert auth.limiter.policy.block_per_ip == 4
    own = LoginRateLimiter()
    kept = Authenticator(store, PasswordHasher(FAST), limiter=own, config=cfg)
    assert kept.limiter is own


async def test_a_valid_token_survives_an_account_block(tmp_path: Path) -> None:
    from jwt_support import AUDIENCE, ISSUER, Provider

    from mailbag.config import OAuthConfig, OAuthIssuer

    idp = Provider()
    jwks = idp.write_jwks(tmp_path / "jwks.json")
    cfg = Config(oauth=OAuthConfig(issuers=(OAuthIssuer(
        issuer=ISSUER, jwks_file=jwks, audience=(AUDIENCE,), strip_domain="example.org"),)))
    store = SqliteStore(tmp_path / "data")
    await store.open()
    hasher = PasswordHasher(FAST, workers=1)
    try:
        await store.create_account("alice", hasher.hash(b"alice-pw"))
        t = FakeTime()
        rl = LoginRateLimiter(RateLimitPolicy(block_per_account=5, spray_threshold=0),
                              clock=t.clock, sleep=t.sleep)
        auth = Authenticator(store, hasher, limiter=rl, config=cfg)
        for i in range(5):
            assert await auth.login("alice", b"guess", f"203.0.113.{i}") is None
        assert await auth.login("alice", b"alice-pw", "198.51.100.1") is None
        good = await auth.login_token(idp.token(), "alice", "198.51.100.1")
        assert not isinstance(good, str) and good.account.name == "alice"
        # A forged or expired token is still refused (as blocked: no hint).
        assert await auth.login_token(idp.token(exp=1), "alice", "198.51.100.1") == "blocked"
    finally:
        hasher.close()
        await store.close()
