"""Password hashing with argon2id (RFC 9106) via argon2-cffi.

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) and
carry their own parameters, so raising the cost in the config only needs
``needs_rehash`` on the next successful login.

Verification costs tens of milliseconds and ``memory_cost`` KiB of RAM, so the
async variants run it on a small dedicated thread pool: the event loop stays
responsive and a burst of logins cannot use more than ``workers`` times the
memory cost.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import argon2
from argon2.exceptions import Argon2Error

from mailbag.config import Argon2Params

_T = TypeVar("_T")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class PasswordHasher:
    def __init__(self, params: Argon2Params | None = None, *, workers: int | None = None) -> None:
        self.params = params if params is not None else Argon2Params()
        self._hasher = argon2.PasswordHasher(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_cost,
            parallelism=self.params.parallelism,
            type=argon2.Type.ID,
        )
        self._workers = workers if workers is not None else default_workers()
        self._executor: ThreadPoolExecutor | None = None
        self._dummy_hash: str | None = None

    # -- synchronous (CLI, tests)

    def hash(self, password: bytes) -> str:
        return self._hasher.hash(password)

    def verify(self, hash: str, password: bytes) -> bool:
        """True when ``password`` matches; False for a mismatch and for any
        hash that is not a valid argon2 string (a disabled account may store
        a marker like ``!``). The comparison inside argon2 is constant-time."""
        try:
            return self._hasher.verify(hash, password)
        except (Argon2Error, ValueError, TypeError):
            return False

    def needs_rehash(self, hash: str) -> bool:
        """True when ``hash`` was made with other parameters (or is not an
        argon2id hash at all) and should be replaced after a good login."""
        try:
            return self._hasher.check_needs_rehash(hash)
        except (Argon2Error, ValueError, TypeError):
            return True

    def dummy_verify(self, password: bytes) -> None:
        """Spend the same time as a real verify, for unknown users, so that
        response time does not reveal which account names exist."""
        self.warm()
        assert self._dummy_hash is not None
        self.verify(self._dummy_hash, password)

    def warm(self) -> None:
        """Make the dummy hash now (the server calls this at start), so the
        first unknown name does not cost a hash more than a real one."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hash(secrets.token_bytes(16))

    # -- async (sessions): off the event loop, bounded concurrency

    async def verify_async(self, hash: str, password: bytes) -> bool:
        return await self._run(self.verify, hash, password)

    async def hash_async(self, password: bytes) -> str:
        return await self._run(self.hash, password)

    async def dummy_verify_async(self, password: bytes) -> None:
        await self._run(self.dummy_verify, password)

    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix="argon2"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Stop the worker threads (after the server stops accepting logins)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
