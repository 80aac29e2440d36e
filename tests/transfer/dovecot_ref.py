"""The reference Dovecot for the import tests: tools/dovecot.py's throwaway
instance in a temporary folder, IMAP on a free loopback port, plaintext
LOGIN (loopback counts as secure), passwd-file users."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from dovecot import DovecotInstance, missing  # noqa: E402
from testserver import free_port  # noqa: E402

PASSWORD = "dove-pw"
dovecot_missing = missing


class Dovecot:
    def __init__(self) -> None:
        # The instance lives one level down: tools/dovecot.py opens the
        # parents up to two levels for the dovecot user.
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-ref-"))
        self.instance = DovecotInstance(self.root / "d" / "dovecot")
        self.dir = self.instance.dir
        self.port = free_port()

    def start(self, users: tuple[str, ...] = ("src", "src2")) -> None:
        self.instance.start({u: "{PLAIN}" + PASSWORD for u in users}, f"""\
protocols = imap
ssl = no
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""", self.port)

    def log(self) -> str:
        return self.instance.log_text()

    def stop(self) -> None:
        self.instance.stop()
        shutil.rmtree(self.root, ignore_errors=True)
