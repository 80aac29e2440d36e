import pytest

from mailbag.auth.ratelimit import Blocked, LoginRateLimiter, RateLimitPolicy


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(policy: RateLimitPolicy | None = None) -> tuple[LoginRateLimiter, FakeTime]:
    t = FakeTime()
    return LoginRateLimiter(policy, clock=t.clock, sleep=t.sleep), t


async def test_first_failures_are_free_then_delays_double_up_to_the_cap() -> None:
    rl, t = limiter()
    delays = []
    for _ in range(10):
        delays.append(await rl.before_attempt("192.0.2.1", "alice"))
        rl.record_failure("192.0.2.1", "alice")
    assert delays == [0, 0, 0, 1, 2, 4, 8, 15, 15, 15]
    assert t.slept == [1, 2, 4, 8, 15, 15, 15]


async def test_delay_follows_the_address_across_account_names() -> None:
    rl, _ = limiter()
    for name in ("a", "b", "c", "d"):
        rl.record_failure("192.0.2.1", name)
    assert await rl.before_attempt("192.0.2.1", "zed") == 2
    assert await rl.before_attempt("192.0.2.2", "zed") == 0


async def test_delay_follows_the_account_across_addresses_case_insensitively() -> None:
    rl, _ = limiter()
    for i in range(3):
        rl.record_failure(f"192.0.2.{i}", "Alice")
    assert await rl.before_attempt("198.51.100.7", "alice") == 1


async def test_address_block_and_expiry() -> None:
    rl, t = limiter(RateLimitPolicy(block_per_ip=5, window=60))
    for i in range(5):
        rl.record_failure("192.0.2.1", f"user{i}")
    with pytest.raises(Blocked) as e:
        await rl.before_attempt("192.0.2.1", "someone")
    assert e.value.scope == "ip" and 0 < e.value.retry_after <= 60
    t.now += 61
    assert await rl.before_attempt("192.0.2.1", "someone") == 0


async def test_account_block_is_the_same_for_unknown_names() -> None:
    rl, _ = limiter(RateLimitPolicy(block_per_account=4, block_per_ip=1000))
    for i in range(4):
        rl.record_failure(f"192.0.2.{i}", "nobody-at-all")
    with pytest.raises(Blocked) as e:
        await rl.before_attempt("203.0.113.9", "nobody-at-all")
    assert e.value.scope == "account"


async def test_success_clears_own_address_failures_only() -> None:
    rl, _ = limiter()
    for _ in range(3):
        rl.record_failure("192.0.2.1", "alice")
    for _ in range(3):
        rl.record_failure("192.0.2.66", "alice")
    rl.record_success("192.0.2.1", "alice")
    assert await rl.before_attempt("192.0.2.1", "alice") == 1  # the attacker's 3 remain
    rl.record_success("192.0.2.66", "alice")
    assert await rl.before_attempt("192.0.2.1", "alice") == 0
    assert rl.tracked() == (0, 0)


async def test_memory_is_bounded() -> None:
    rl, _ = limiter(RateLimitPolicy(max_entries=10))
    # One address per /24, so that the network scope does not add delays.
    for i in range(100):
        rl.record_failure(f"10.{i}.0.1", f"user{i}" + "x" * 100_000)
    assert rl.tracked() == (10, 10)
    assert rl.tracked_networks() == 1
    # The newest survive, the oldest were evicted.
    rl.record_failure("10.99.0.1", "u")
    assert await rl.before_attempt("10.99.0.1", "u") == 0  # 2 failures: still free
    rl.record_failure("10.99.0.1", "u")
    assert await rl.before_attempt("10.99.0.1", "u") == 1
    assert await rl.before_attempt("10.0.0.1", "u") == 0  # evicted


async def test_real_sleep_is_used_by_default() -> None:
    rl = LoginRateLimiter(RateLimitPolicy(base_delay=0.01, free_failures=0))
    assert await rl.before_attempt("::1", "a") == 0.01
