"""The admin CLI, against the real SqliteStore when it exists and an
in-memory account table otherwise (the store contract suite covers the store)."""

import argparse
import asyncio
import contextlib
import dataclasses
import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailbag.auth.passwords import PasswordHasher
from mailbag.cli import common
from mailbag.cli.main import main
from mailbag.config import Argon2Params
from mailbag.store.api import Account, AlreadyExists

try:
    from mailbag.store.sqlite import SqliteStore  # type: ignore[attr-defined]
except ImportError:
    SqliteStore = None

FAST_TOML = "[argon2]\ntime_cost = 1\nmemory_cost = 64\nparallelism = 1\n"


class MemoryAccounts:
    tables: dict[Path, dict[str, Account]] = {}

    def __init__(self, data_dir: Path) -> None:
        self.accounts = self.tables.setdefault(data_dir, {})

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def create_account(self, name: str, password_hash: str) -> Account:
        if name in self.accounts:
            raise AlreadyExists(name)
        a = Account(len(self.accounts) + 1, name, password_hash)
        self.accounts[name] = a
        return a

    async def get_account(self, name: str) -> Account | None:
        return self.accounts.get(name)

    async def list_accounts(self) -> list[Account]:
        return list(self.accounts.values())

    async def set_password_hash(self, account_id: int, password_hash: str) -> None:
        for n, a in self.accounts.items():
            if a.id == account_id:
                self.accounts[n] = dataclasses.replace(a, password_hash=password_hash)

    async def set_scram_credentials(self, account_id: int, scram: str | None) -> None:
        pass  # SCRAM secrets are tested against the real store in tests/auth

    async def delete_account(self, account_id: int) -> None:
        for n, a in list(self.accounts.items()):
            if a.id == account_id:
                del self.accounts[n]


@pytest.fixture(params=["sqlite", "memory"])
def env(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if request.param == "sqlite":
        if SqliteStore is None:
            pytest.skip("mailbag.store.sqlite.SqliteStore does not exist yet")
    else:
        monkeypatch.setattr(common, "make_store", lambda config: MemoryAccounts(config.data_dir))
    cfg = tmp_path / "mailbag.toml"
    cfg.write_text(FAST_TOML)
    return {"args": ["--config", str(cfg), "--data-dir", str(tmp_path / "data")], "tmp": tmp_path}


def run(env: dict[str, Any], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                # Options after the sub-command, as people type them.
                code = main([*argv, *env["args"]])
            except SystemExit as e:
                code = int(e.code or 0)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


async def stored_hash(env: dict[str, Any], name: str) -> str:
    config = common.config_from_args(
        argparse.Namespace(config=Path(env["args"][1]), data_dir=Path(env["args"][3]))
    )
    async with common.opened_store(config) as store:
        account = await store.get_account(name)
    assert account is not None
    return account.password_hash


def hasher() -> PasswordHasher:
    return PasswordHasher(Argon2Params(time_cost=1, memory_cost=64, parallelism=1))


def test_add_list_passwd_del(env: dict[str, Any]) -> None:
    assert run(env, "user", "add", "Alice", "--password-stdin", stdin="s3cret pass\n") == (
        0, "created user alice\n", ""
    )
    code, out, _ = run(env, "user", "list")
    assert (code, out) == (0, "alice\n")
    h = asyncio.run(stored_hash(env, "alice"))
    assert hasher().verify(h, b"s3cret pass") and h.startswith("$argon2id$v=19$m=64,t=1,p=1$")

    assert run(env, "user", "passwd", "alice", "--password-stdin", stdin="new\r\n")[0] == 0
    h = asyncio.run(stored_hash(env, "alice"))
    assert hasher().verify(h, b"new")

    assert run(env, "user", "del", "alice") == (0, "deleted user alice\n", "")
    assert run(env, "user", "list")[1] == ""


def test_errors(env: dict[str, Any]) -> None:
    run(env, "user", "add", "bob", "--password-stdin", stdin="pw\n")
    assert run(env, "user", "add", "BOB", "--password-stdin", stdin="pw\n") == (
        1, "", "mailbag: user bob exists\n"
    )
    assert run(env, "user", "passwd", "carol", "--password-stdin", stdin="pw\n") == (
        1, "", "mailbag: no such user carol\n"
    )
    assert run(env, "user", "del", "carol")[2] == "mailbag: no such user carol\n"
    assert run(env, "user", "add", "dave", "--password-stdin", stdin="\n")[2] == (
        "mailbag: empty password\n"
    )
    code, _, err = run(env, "user", "add", "bad name", "--password-stdin", stdin="pw\n")
    assert code == 1 and "'bad name'" in err
    assert run(env, "user", "list")[1] == "bob\n"


def test_generate_prints_a_working_password(env: dict[str, Any]) -> None:
    code, out, _ = run(env, "user", "add", "demo", "--generate")
    assert code == 0
    created, pw_line = out.splitlines()
    assert created == "created user demo"
    password = pw_line.removeprefix("password: ")
    assert len(password) >= 20
    h = asyncio.run(stored_hash(env, "demo"))
    assert hasher().verify(h, password.encode())


def test_interactive_prompt_twice(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["pw1", "pw2", "pw3", "pw3"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(env, "user", "add", "erin")[2] == "mailbag: the passwords do not match\n"
    assert run(env, "user", "add", "erin")[0] == 0


def test_bad_config_is_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[limits]\nmax_lien = 1\n")
    # Options before the sub-command work too.
    code, _, err = run({"args": []}, "--config", str(cfg), "user", "list")
    assert code == 1 and "limits.max_lien" in err


def test_serve_calls_server_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import types

    from mailbag.log import unconfigure_logging

    monkeypatch.setattr("logging.root.level", logging.root.level)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    seen = []
    fake = types.ModuleType("mailbag.server")
    fake.run = lambda config: seen.append(config) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mailbag.server", fake)
    assert main(["serve", "--data-dir", str(tmp_path)]) == 7
    unconfigure_logging()
    assert seen[0].data_dir == tmp_path


def test_entry_point_help() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mailbag.cli.main", "user", "--help"],
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 0 and "passwd" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "mailbag.cli.main"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 2


def test_passwd_generate_prints_a_working_password(env: dict[str, Any]) -> None:
    run(env, "user", "add", "gina", "--password-stdin", stdin="old\n")
    code, out, err = run(env, "user", "passwd", "gina", "--generate")
    assert (code, err) == (0, "")
    changed, pw_line = out.splitlines()
    assert changed == "changed the password of gina"
    password = pw_line.removeprefix("password: ")
    assert len(password) >= 20 and password != pw_line
    h = asyncio.run(stored_hash(env, "gina"))
    assert hasher().verify(h, password.encode()) and not hasher().verify(h, b"old")


@pytest.mark.parametrize("command", ["add", "passwd"])
def test_password_sources_exclude_each_other(env: dict[str, Any], command: str) -> None:
    code, out, err = run(env, "user", command, "hank", "--generate", "--password-stdin",
                         stdin="pw\n")
    assert code == 2 and "not allowed with argument" in err
    assert run(env, "user", "list")[1] == ""


# ------------------------------------------------- against the real server
def imap_login(port: int, user: str, password: str) -> str:
    """'OK', or the text of the NO the server answered."""
    import imaplib

    c = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    try:
        c.login(user, password)
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        c.logout()
    return "OK"


def test_accounts_managed_while_the_server_runs(server: Any) -> None:
    """The server reads accounts from the store on every login: what the
    CLI does takes effect at once, with no restart."""
    r = server.cli("user", "add", "frank", "--password-stdin", stdin="first pw\n")
    assert (r.returncode, r.stdout) == (0, "created user frank\n"), r.stderr
    assert "frank" in server.cli("user", "list").stdout.split()
    assert imap_login(server.imap_port, "frank", "first pw") == "OK"

    r = server.cli("user", "passwd", "frank", "--generate")
    assert r.returncode == 0, r.stderr
    password = r.stdout.splitlines()[-1].removeprefix("password: ")
    assert "AUTHENTICATIONFAILED" in imap_login(server.imap_port, "frank", "first pw")
    assert imap_login(server.imap_port, "frank", password) == "OK"

    r = server.cli("user", "del", "frank")
    assert (r.returncode, r.stdout) == (0, "deleted user frank\n"), r.stderr
    assert "frank" not in server.cli("user", "list").stdout.split()
    assert "AUTHENTICATIONFAILED" in imap_login(server.imap_port, "frank", password)


def make_serve_first_run(data: Path) -> str:
    """The first-run block of `make serve` (`if [ ! -f DATA/...db ]; then ...
    user add demo --generate ...; fi`), taken from the Makefile itself with
    make -n; the venv set-up lines before it, if any, are not run."""
    import shutil

    from testserver import ROOT

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    plan = subprocess.run(["make", "-s", "-n", "serve", f"DATA={data}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    lines = plan.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("if [ ! -f"))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "fi")
    assert "user add demo --generate" in lines[start + 1]
    assert lines[end + 1].split()[1:] == ["serve", "--data-dir", str(data)]
    if not (ROOT / ".venv" / "bin" / "mailbag").exists():
        pytest.skip("no .venv/bin/mailbag: run make once")
    return "\n".join(lines[start:end + 1])


def sh(script: str) -> subprocess.CompletedProcess[str]:
    from testserver import ROOT

    return subprocess.run(["sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def test_make_serve_first_run_prints_a_password_that_logs_in(tmp_path: Path) -> None:
    """What `make serve` does on a fresh checkout, against a real server on
    the data directory it made."""
    from testserver import TestServer

    data = tmp_path / "var"
    r = sh(make_serve_first_run(data))
    assert r.returncode == 0, r.stderr
    created, pw_line = r.stdout.splitlines()
    assert created == "created user demo"
    password = pw_line.removeprefix("password: ")
    assert len(password) >= 20 and password != pw_line

    # The password was hashed with the shipped argon2 cost; so is it checked.
    srv = TestServer(data, argon2=None)
    srv.start()
    try:
        assert imap_login(srv.imap_port, "demo", password) == "OK"
        assert "AUTHENTICATIONFAILED" in imap_login(srv.imap_port, "demo", password + "x")
    finally:
        srv.stop()


def test_make_serve_second_run_keeps_the_account(tmp_path: Path) -> None:
    first_run = make_serve_first_run(tmp_path / "var")
    assert sh(first_run).returncode == 0
    # The password is printed once; a second `make serve` leaves the account
    # alone (and must not fail, or make stops before serving).
    again = sh(first_run)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
