"""Start a throwaway mailbag server for tests, benchmarks and the conformance
run: a temporary data directory, cheap argon2 parameters, users with known
passwords, free loopback ports. Used by tests/conftest.py and tools/*.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tests measure protocol behaviour, not password hashing cost.
FAST_ARGON2 = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


def client_tls() -> ssl.SSLContext:
    """A client TLS context that accepts the test server's self-signed
    certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TestServer:
    data_dir: Path
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)
    pop3_port: int = field(default_factory=free_port)
    pop3s_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # TOML appended after the generated tables ([limits], [tls], ...).
    extra_config: str = ""
    # Top-level keys (``secure_loopback = false``): TOML needs them before
    # the first table, so they cannot go into extra_config.
    top_config: str = ""
    # The [argon2] table; None writes none (mailbag's shipped defaults). An
    # [argon2] table in extra_config replaces this one, since TOML forbids
    # defining a table twice.
    argon2: dict[str, int] | None = field(default_factory=lambda: dict(FAST_ARGON2))

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mailbag.toml"

    def argon2_table(self) -> str:
        if self.argon2 is None or re.search(r"^\s*\[argon2\]", self.extra_config, re.M):
            return ""
        return "[argon2]\n" + "".join(f"{k} = {v}\n" for k, v in self.argon2.items())

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        top = self.top_config
        if top and not top.endswith("\n"):
            top += "\n"
        self.config_path.write_text(
            f'data_dir = "{self.data_dir}"\n'
            'log_level = "INFO"\n'
            + top
            + f"[imap]\nhost = \"127.0.0.1\"\nport = {self.imap_port}\n"
            f"[imaps]\nhost = \"127.0.0.1\"\nport = {self.imaps_port}\n"
            f"[pop3]\nhost = \"127.0.0.1\"\nport = {self.pop3_port}\n"
            f"[pop3s]\nhost = \"127.0.0.1\"\nport = {self.pop3s_port}\n"
            + self.argon2_table()
            + self.extra_config
        )

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailbag.cli.main", *args, "--config", str(self.config_path)],
            input=stdin, capture_output=True, text=True, check=False,
        )

    def add_user(self, name: str, password: str) -> None:
        r = self.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
        if r.returncode != 0:
            raise RuntimeError(f"user add failed: {r.stdout}{r.stderr}")

    def start(self, timeout: float = 20.0) -> None:
        self.write_config()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.data_dir / "server.log", "ab") as log:
            # The child keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailbag.cli.main", "serve",
                 "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited early:\n" + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + self.log_text())

    def log_text(self) -> str:
        try:
            return (self.data_dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> int | None:
        """Stop the server (SIGTERM, or SIGKILL with kill=True); its exit
        status, or None when it was not running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        status = self.proc.returncode
        self.proc = None
        return status


@contextlib.contextmanager
def serving(srv: TestServer, users: dict[str, str],
            no_traceback: bool = False) -> Iterator[TestServer]:
    """Write *srv*'s config, add *users*, start it; on exit stop it and
    remove its data. A traceback in its log is printed, or with
    *no_traceback* fails the caller."""
    srv.write_config()
    for name, password in users.items():
        srv.add_user(name, password)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        log = srv.log_text()
        shutil.rmtree(srv.data_dir, ignore_errors=True)
        if "Traceback" in log:
            assert not no_traceback, log
            print(log)


def temporary_server(users: dict[str, str]) -> TestServer:
    server = TestServer(Path(tempfile.mkdtemp(prefix="mailbag-")))
    server.write_config()
    for name, password in users.items():
        server.add_user(name, password)
    server.start()
    return server
