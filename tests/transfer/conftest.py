"""Fixtures for the import/export tests: a mailbag data directory driven
through the real ``mailbag`` CLI, a reader of an account's full contents
through the real SQLite store, and a throwaway Dovecot on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dovecot_ref import Dovecot, dovecot_missing  # noqa: E402

from mailbag.store.sqlite import SqliteStore  # noqa: E402


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``mailbag`` command in a child process."""
    return subprocess.run([sys.executable, "-m", "mailbag.cli.main", *args], input=stdin,
                          capture_output=True, text=True, check=False, timeout=600)


@dataclass(frozen=True)
class Msg:
    data: bytes
    flags: frozenset[str]
    internaldate: int             # unix seconds


Snapshot = dict[str, list[Msg]]   # mailbox name -> messages in UID order


def snapshot(data_dir: Path, user: str, *, with_empty: bool = False) -> Snapshot:
    """Every selectable mailbox of ``user`` with its messages, read through
    the real store."""

    async def read() -> Snapshot:
        out: Snapshot = {}
        async with SqliteStore(data_dir) as store:
            account = await store.get_account(user)
            assert account is not None, user
            for box in await store.list_mailboxes(account.id):
                if box.noselect:
                    continue
                uids = [m.uid for m in await store.message_list(box.id)]
                msgs = []
                for rec in await store.fetch_records(box.id, uids):
                    msgs.append(Msg(await store.read_blob(rec.blob_id),
                                    frozenset(f.casefold() for f in rec.flags),
                                    int(rec.internaldate.timestamp())))
                if msgs or with_empty:
                    out[box.name] = msgs
        return out

    return asyncio.run(read())


class Mailbag:
    """A data directory plus a config file, used through the CLI."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "var"
        self.config = root / "mailbag.toml"
        self.config.write_text(
            f'data_dir = "{self.data_dir}"\n'
            "[argon2]\ntime_cost = 1\nmemory_cost = 1024\nparallelism = 1\n"
        )

    def cli(self, *args: str, stdin: str | None = None, check: bool = True):
        r = run_cli(*args, "--config", str(self.config), stdin=stdin)
        if check:
            assert r.returncode in (0, 2), f"mailbag {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def add_user(self, name: str) -> None:
        self.cli("user", "add", name, "--password-stdin", stdin="pw\n")

    def snapshot(self, user: str, **kw: bool) -> Snapshot:
        return snapshot(self.data_dir, user, **kw)


@pytest.fixture
def mailbag(tmp_path: Path) -> Mailbag:
    mb = Mailbag(tmp_path)
    for name in ("alice", "bob", "carol", "dave"):
        mb.add_user(name)
    return mb


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    reason = dovecot_missing()
    if reason:
        pytest.skip(reason)
    d = Dovecot()
    d.start()
    try:
        yield d
    finally:
        d.stop()
