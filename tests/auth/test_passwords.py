import asyncio
import os
import threading

from mailbag.auth.passwords import PasswordHasher
from mailbag.config import Argon2Params

FAST = Argon2Params(time_cost=1, memory_cost=64, parallelism=1)


def test_hash_is_argon2id_with_configured_parameters() -> None:
    h = PasswordHasher(FAST).hash(b"hunter2")
    assert h.startswith("$argon2id$v=19$m=64,t=1,p=1$")


def test_default_parameters_are_rfc9106_low_memory() -> None:
    h = PasswordHasher()
    lanes = max(1, min(4, os.cpu_count() or 1))    # one lane per core, up to 4
    assert (h.params.time_cost, h.params.memory_cost, h.params.parallelism) == (3, 65536, lanes)


def test_verify_right_and_wrong() -> None:
    hasher = PasswordHasher(FAST)
    h = hasher.hash("pässwörd".encode())
    assert hasher.verify(h, "pässwörd".encode())
    assert not hasher.verify(h, b"passwoerd")
    assert not hasher.verify(h, b"")


def test_verify_never_raises_on_malformed_hash() -> None:
    hasher = PasswordHasher(FAST)
    for bad in ["", "!", "$argon2id$", "$argon2id$v=19$m=64,t=1,p=1$xx$yy", "plaintext", "\0"]:
        assert hasher.verify(bad, b"x") is False


def test_needs_rehash_when_parameters_change() -> None:
    old = PasswordHasher(FAST).hash(b"pw")
    assert not PasswordHasher(FAST).needs_rehash(old)
    assert PasswordHasher(Argon2Params(time_cost=2, memory_cost=64, parallelism=1)).needs_rehash(old)
    assert PasswordHasher(FAST).needs_rehash("not-a-hash")


def test_dummy_verify_runs() -> None:
    hasher = PasswordHasher(FAST)
    hasher.dummy_verify(b"whatever")
    hasher.dummy_verify(b"again")  # the dummy hash is made once and reused


async def test_async_variants_run_off_the_event_loop_thread() -> None:
    hasher = PasswordHasher(FAST, workers=2)
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real_verify = hasher.verify

    def spy(h: str, pw: bytes) -> bool:
        seen.append(threading.get_ident())
        return real_verify(h, pw)

    hasher.verify = spy  # type: ignore[method-assign]
    h = await hasher.hash_async(b"pw")
    results = await asyncio.gather(*(hasher.verify_async(h, p) for p in (b"pw", b"no", b"pw")))
    await hasher.dummy_verify_async(b"x")
    assert results == [True, False, True]
    assert seen and loop_thread not in seen
    hasher.close()


def test_warm_makes_the_dummy_hash_before_the_first_unknown_login() -> None:
    h = PasswordHasher(FAST)
    h.warm()
    made = h._dummy_hash
    assert made is not None
    calls = []
    real_hash = h.hash
    h.hash = lambda pw: calls.append(pw) or real_hash(pw)  # type: ignore[method-assign]
    h.dummy_verify(b"guess")
    assert calls == [] and h._dummy_hash == made      # one argon2 run, as for a real user
