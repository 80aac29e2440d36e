"""A throwaway Dovecot on a free loopback port (see
/work/shared/reference/dovecot-on-loopback.md): its own base_dir, state_dir,
log and Maildir++ mail directory under a temporary folder, plaintext LOGIN
(loopback counts as secure), passwd-file users."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PASSWORD = "dove-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dovecot_missing() -> str | None:
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


class Dovecot:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-ref-"))
        self.port = free_port()
        self.conf = self.dir / "dovecot.conf"
        self.master_pid: int | None = None

    def start(self, users: tuple[str, ...] = ("src", "src2")) -> None:
        d = self.dir
        os.chmod(d, 0o755)
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir()
        shutil.chown(d / "mail", "dovecot", "dovecot")
        (d / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in users))
        self.conf.write_text(f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/mail/%u allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
""")
        with open(d / "start.log", "wb") as out:
            r = subprocess.run(["dovecot", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("dovecot failed to start:\n" + (d / "start.log").read_text())
        try:
            self.master_pid = int((d / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError):
            self.master_pid = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not answer:\n" + self.log())

    def log(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.conf.exists():
            subprocess.run(["dovecot", "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                           check=False)
        if self.master_pid:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(self.master_pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(self.master_pid, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
