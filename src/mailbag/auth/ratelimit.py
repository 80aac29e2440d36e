"""Failed-login limiting, per source address and per account (DESIGN.md rule 8).

After ``free_failures`` recent failures every further attempt is delayed
(1 s, 2 s, 4 s ... up to ``max_delay``); past ``block_per_ip`` failures from
one address, or ``block_per_account`` against one account name, attempts are
refused outright until the oldest failure leaves the window. Account names are
counted whether or not the account exists, so the answers do not reveal which
names are real.

State is in memory and bounded: each table keeps at most ``max_entries`` keys
and forgets the least recently failed first.

A known trade-off: a per-account block lets an attacker lock a user out from
many addresses. A success clears the failures made from the same address, so a
user who mistyped is not slowed down afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailbag.auth.usernames import MAX_USERNAME, normalize_username


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    free_failures: int = 3
    base_delay: float = 1.0
    max_delay: float = 15.0
    window: float = 15 * 60.0
    block_per_ip: int = 30
    block_per_account: int = 100
    max_entries: int = 100_000


class Blocked(Exception):
    """Too many recent failures; refuse without checking the password."""

    def __init__(self, scope: str, retry_after: float) -> None:
        super().__init__(f"too many failed logins ({scope}); retry after {retry_after:.0f}s")
        self.scope = scope                  # "ip" or "account", for the log
        self.retry_after = retry_after


class _Failures:
    """Timestamps of recent failures per key, with the address of each."""

    def __init__(self, keep: int, max_entries: int) -> None:
        self._keep = keep
        self._max_entries = max_entries
        self._table: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def recent(self, key: str, now: float, window: float) -> deque[tuple[float, str]] | None:
        q = self._table.get(key)
        if q is None:
            return None
        while q and q[0][0] <= now - window:
            q.popleft()
        if not q:
            del self._table[key]
            return None
        return q

    def add(self, key: str, now: float, ip: str) -> None:
        q = self._table.get(key)
        if q is None:
            q = self._table[key] = deque(maxlen=self._keep)
            while len(self._table) > self._max_entries:
                self._table.popitem(last=False)
        self._table.move_to_end(key)
        q.append((now, ip))

    def forget(self, key: str, ip: str | None = None) -> None:
        q = self._table.get(key)
        if q is None:
            return
        if ip is not None:
            kept = [item for item in q if item[1] != ip]
            q.clear()
            q.extend(kept)
        if ip is None or not q:
            del self._table[key]

    def __len__(self) -> int:
        return len(self._table)


def _account_key(username: str) -> str:
    # No real name is longer; truncating keeps hostile 64 KiB "names" from
    # multiplying the memory bound.
    return normalize_username(username[: MAX_USERNAME + 1])


class LoginRateLimiter:
    def __init__(
        self,
        policy: RateLimitPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.policy = p = policy if policy is not None else RateLimitPolicy()
        self._clock = clock
        self._sleep = sleep
        self._by_ip = _Failures(max(p.block_per_ip, p.free_failures + 1), p.max_entries)
        self._by_account = _Failures(max(p.block_per_account, p.free_failures + 1), p.max_entries)

    def check(self, ip: str, username: str) -> float:
        """The delay the next attempt deserves; raises Blocked."""
        p = self.policy
        now = self._clock()
        ip_q = self._by_ip.recent(ip, now, p.window)
        acct_q = self._by_account.recent(_account_key(username), now, p.window)
        if ip_q is not None and len(ip_q) >= p.block_per_ip:
            raise Blocked("ip", ip_q[0][0] + p.window - now)
        if acct_q is not None and len(acct_q) >= p.block_per_account:
            raise Blocked("account", acct_q[0][0] + p.window - now)
        n = max(len(ip_q or ()), len(acct_q or ()))
        if n < p.free_failures:
            return 0.0
        return min(p.max_delay, p.base_delay * 2.0 ** min(n - p.free_failures, 32))

    async def before_attempt(self, ip: str, username: str) -> float:
        """Wait as long as recent failures demand; return the seconds waited.

        Raises Blocked when the address or account is temporarily blocked.
        """
        delay = self.check(ip, username)
        if delay > 0:
            await self._sleep(delay)
        return delay

    def record_failure(self, ip: str, username: str) -> None:
        now = self._clock()
        self._by_ip.add(ip, now, ip)
        self._by_account.add(_account_key(username), now, ip)

    def record_success(self, ip: str, username: str) -> None:
        self._by_ip.forget(ip)
        self._by_account.forget(_account_key(username), ip)

    def tracked(self) -> tuple[int, int]:
        """(addresses, accounts) currently remembered; for tests and metrics."""
        return len(self._by_ip), len(self._by_account)
