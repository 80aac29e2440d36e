"""A throwaway Dovecot on loopback, as /work/shared/reference/dovecot-on-loopback.md
sets it up: its own base_dir, state_dir, log and mail directory under one
folder, passwd-file users with a static userdb (mail_uid=dovecot), a single
"inbox" namespace with "/" as separator. The benchmarks (bench/) and the
reference tests (tests/transfer/) run Dovecot beside mailbag through this.

The caller adds what differs (protocols, listeners, limits) as config text;
`start()` refuses to return before Dovecot answers on its port, and `stop()`
makes sure the master process is gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def missing() -> str | None:
    """Why Dovecot cannot run here, or None when it can."""
    if shutil.which("dovecot") is None:
        return "dovecot not installed (apt-get install dovecot-imapd)"
    try:
        import pwd

        pwd.getpwnam("dovecot")
    except KeyError:
        return "no 'dovecot' system user (the dovecot-core package creates it)"
    if os.geteuid() != 0:
        return "Dovecot's mail_uid=dovecot setup needs root to start"
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DovecotInstance:
    """Dovecot with everything under *directory* (made if missing); mail of
    a user lives in mail/<user_var> (%u the login, %n its local part)."""

    def __init__(self, directory: Path, mail_format: str = "maildir",
                 user_var: str = "%u") -> None:
        self.dir = directory
        self.mail_format = mail_format
        self.user_var = user_var
        self.conf = directory / "dovecot.conf"
        self.master_pid: int | None = None

    def base_config(self) -> str:
        d, u = self.dir, self.user_var
        return f"""\
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = {self.mail_format}:{d}/mail/{u}
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/mail/{u} allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""

    def start(self, users: dict[str, str], config: str, port: int, greeting: bytes = b"* OK",
              timeout: float = 30.0) -> None:
        """Start with *users* (name -> passwd-file password field, e.g.
        "{PLAIN}secret") and *config* (protocols, ssl, services) on top of
        base_config(); wait until *port* greets with *greeting*."""
        d = self.dir
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # The dovecot user must be able to walk down to its mail directory.
        for p in (d.parent.parent, d.parent, d):
            with contextlib.suppress(OSError):
                os.chmod(p, 0o755)
        shutil.chown(d / "mail", "dovecot", "dovecot")
        (d / "passwd").write_text("".join(f"{u}:{pw}\n" for u, pw in users.items()))
        self.conf.write_text(self.base_config() + config)
        # Not capture_output: the daemon keeps inherited pipes open forever.
        with open(d / "start.log", "wb") as out:
            r = subprocess.run(["dovecot", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("dovecot failed to start:\n"
                               + (d / "start.log").read_text(errors="replace"))
        try:
            self.master_pid = int((d / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError):
            self.master_pid = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    if s.recv(200).startswith(greeting):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer on port {port}:\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if not self.conf.exists():
            return
        subprocess.run(["dovecot", "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=False)
        if self.master_pid:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and pid_alive(self.master_pid):
                time.sleep(0.1)
            if pid_alive(self.master_pid):
                with contextlib.suppress(OSError):
                    os.kill(self.master_pid, signal.SIGKILL)
            self.master_pid = None
        self.conf.unlink(missing_ok=True)
