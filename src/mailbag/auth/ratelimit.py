"""Failed-login limiting per source address, per network, per account and
globally (DESIGN.md rule 8; docs/config.md "[ratelimit]").

After ``free_failures`` recent failures every further attempt is delayed
(1 s, 2 s, 4 s ... up to ``max_delay``); past ``block_per_ip`` failures from
one address, ``block_per_network`` from one network (IPv4 /24, IPv6 /64 by
default: one attacker usually holds a whole block) or ``block_per_account``
against one account name, attempts are refused outright until the oldest
failure leaves the window. Account names are counted whether or not the
account exists, so the answers do not reveal which names are real.

Password spraying (a few guesses on each of many accounts, from many
addresses) stays under every per-address and per-account threshold, so there
is also a global view: when more than ``spray_threshold`` failures happened
server-wide within ``spray_window`` seconds, *spray mode* is on and every
source, network and account with even one recent failure is delayed
(``free_failures`` drops to 1 for them). Sources that never failed are not
slowed down, so honest users keep logging in at full speed.

A blocked attacker must not lock a user out of a device that holds a valid
app password or token (docs/auth.md): callers that have such a credential in
hand ask with ``device=True``, which applies only the per-address scope (an
address that guessed is still slowed down and blocked, whatever it sends).
The credential is verified afterwards as usual; it is 100 random bits, so
letting it past the account and network scopes helps no guesser.

State is in memory and bounded: each table keeps at most ``max_entries`` keys
(networks: a tenth of it) and forgets the least recently failed first; the
global counter keeps one bucket per second of ``spray_window``.

A success clears the failures made from the same address, so a user who
mistyped is not slowed down afterwards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailbag.auth.usernames import MAX_USERNAME, normalize_username
from mailbag.log import log_event

_log = logging.getLogger("mailbag.auth")

# Scopes a Blocked names (the auth-blocked log line's ``scope=``).
SCOPE_IP = "ip"
SCOPE_NETWORK = "network"
SCOPE_ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    free_failures: int = 3
    base_delay: float = 1.0
    max_delay: float = 15.0
    window: float = 15 * 60.0
    block_per_ip: int = 30
    block_per_account: int = 100
    max_entries: int = 100_000
    network_free_failures: int = 10
    block_per_network: int = 150
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    spray_threshold: int = 200          # 0: no global view
    spray_window: float = 5 * 60.0

    @classmethod
    def from_config(cls, cfg: Any) -> RateLimitPolicy:
        """From config.RateLimitConfig (same field names)."""
        names = cls.__dataclass_fields__
        return cls(**{k: getattr(cfg, k) for k in names if hasattr(cfg, k)})


class Blocked(Exception):
    """Too many recent failures; refuse without checking the password."""

    def __init__(self, scope: str, retry_after: float) -> None:
        super().__init__(f"too many failed logins ({scope}); retry after {retry_after:.0f}s")
        self.scope = scope                  # "ip", "network" or "account", for the log
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


class _GlobalRate:
    """Failures server-wide in the last ``window`` seconds, in one-second
    buckets (memory: at most ``window`` buckets, whatever the rate)."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._buckets: deque[list[int]] = deque()     # [second, count]
        self._total = 0

    def _prune(self, now: float) -> None:
        oldest = int(now - self._window)
        while self._buckets and self._buckets[0][0] <= oldest:
            self._total -= self._buckets.popleft()[1]

    def add(self, now: float) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])
        self._total += 1
        self._prune(now)

    def count(self, now: float) -> int:
        self._prune(now)
        return self._total


def _account_key(username: str) -> str:
    # No real name is longer; truncating keeps hostile 64 KiB "names" from
    # multiplying the memory bound.
    return normalize_username(username[: MAX_USERNAME + 1])


def network_key(ip: str, ipv4_prefix: int = 24, ipv6_prefix: int = 64) -> str:
    """The network ``ip`` belongs to ("192.0.2.0/24", "2001:db8::/64"); an
    IPv4-mapped IPv6 address counts as IPv4. Not an address (a Unix socket's
    "local"): the string itself."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip[:64]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = ipv4_prefix if addr.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


class LoginRateLimiter:
    def __init__(
        self,
        policy: RateLimitPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        log: logging.Logger | None = None,
    ) -> None:
        self.policy = p = policy if policy is not None else RateLimitPolicy()
        self._clock = clock
        self._sleep = sleep
        self._log = log if log is not None else _log
        self._by_ip = _Failures(max(p.block_per_ip, p.free_failures + 1), p.max_entries)
        self._by_account = _Failures(max(p.block_per_account, p.free_failures + 1), p.max_entries)
        self._by_network = _Failures(
            max(p.block_per_network, p.network_free_failures + 1), max(1, p.max_entries // 10)
        )
        self._global = _GlobalRate(p.spray_window)
        self._spraying = False

    def _net(self, ip: str) -> str:
        return network_key(ip, self.policy.ipv4_prefix, self.policy.ipv6_prefix)

    def spraying(self) -> bool:
        """Whether spray mode is on (enough failures server-wide)."""
        p = self.policy
        if p.spray_threshold <= 0:
            return False
        now = self._clock()
        on = self._global.count(now) >= p.spray_threshold
        if on != self._spraying:
            self._spraying = on
            log_event(self._log, "auth-spray-on" if on else "auth-spray-off",
                      level=logging.WARNING if on else logging.INFO,
                      failures=self._global.count(now), window=round(p.spray_window))
        return on

    def check(self, ip: str, username: str, *, device: bool = False) -> float:
        """The delay the next attempt deserves; raises Blocked.

        ``device``: the attempt carries an app password or token of the
        account (see the module docstring); only the address is judged.
        """
        p = self.policy
        now = self._clock()
        ip_q = self._by_ip.recent(ip, now, p.window)
        if ip_q is not None and len(ip_q) >= p.block_per_ip:
            raise Blocked(SCOPE_IP, ip_q[0][0] + p.window - now)
        spray = self.spraying()
        # In spray mode one failure is enough to be slowed down.
        free = min(p.free_failures, 1) if spray else p.free_failures
        excess = len(ip_q or ()) - free
        if not device:
            net_q = self._by_network.recent(self._net(ip), now, p.window)
            acct_q = self._by_account.recent(_account_key(username), now, p.window)
            if net_q is not None and len(net_q) >= p.block_per_network:
                raise Blocked(SCOPE_NETWORK, net_q[0][0] + p.window - now)
            if acct_q is not None and len(acct_q) >= p.block_per_account:
                raise Blocked(SCOPE_ACCOUNT, acct_q[0][0] + p.window - now)
            net_free = min(p.network_free_failures, 1) if spray else p.network_free_failures
            excess = max(excess, len(acct_q or ()) - free, len(net_q or ()) - net_free)
        if excess < 0:
            return 0.0
        return min(p.max_delay, p.base_delay * 2.0 ** min(excess, 32))

    async def before_attempt(self, ip: str, username: str, *, device: bool = False) -> float:
        """Wait as long as recent failures demand; return the seconds waited.

        Raises Blocked when the address, its network or the account is
        temporarily blocked (only the address with ``device``).
        """
        delay = self.check(ip, username, device=device)
        if delay > 0:
            await self._sleep(delay)
        return delay

    def record_failure(self, ip: str, username: str) -> None:
        now = self._clock()
        self._by_ip.add(ip, now, ip)
        self._by_network.add(self._net(ip), now, ip)
        self._by_account.add(_account_key(username), now, ip)
        self._global.add(now)

    def record_success(self, ip: str, username: str) -> None:
        self._by_ip.forget(ip)
        self._by_network.forget(self._net(ip), ip)
        self._by_account.forget(_account_key(username), ip)

    def tracked(self) -> tuple[int, int]:
        """(addresses, accounts) currently remembered; for tests and metrics."""
        return len(self._by_ip), len(self._by_account)

    def tracked_networks(self) -> int:
        return len(self._by_network)
