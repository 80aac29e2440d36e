"""Run ../shared/conformance/imapscript.py (Dovecot imaptest's scripts)
against a freshly started mailbag and fail when a group listed in
tools/conformance-ratchet.txt fails: the groups that pass today may never
slide back. New passes are reported so that the ratchet can be raised.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testserver import ROOT, temporary_server  # noqa: E402

RATCHET = ROOT / "tools" / "conformance-ratchet.txt"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"),
                    help="the shared/ folder holding conformance/")
    ap.add_argument("--update", action="store_true", help="rewrite the ratchet file")
    args = ap.parse_args()
    runner = Path(args.shared) / "conformance" / "imapscript.py"
    scripts = Path(args.shared) / "conformance" / "scripts"
    if not runner.exists():
        print(f"conformance: {runner} not found", file=sys.stderr)
        return 2
    server = temporary_server({"testuser": "pass", "testuser2": "pass"})
    report = Path(tempfile.mkdtemp()) / "report.json"
    try:
        proc = subprocess.run(
            [sys.executable, str(runner), "--host", "127.0.0.1", "--port", str(server.imap_port),
             "--user", "testuser", "--password", "pass", "--user2", "testuser2",
             "--json", str(report), str(scripts)],
            check=False,
        )
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    if not report.exists():
        print("conformance: runner produced no report", file=sys.stderr)
        return 2
    data = json.loads(report.read_text())
    passed = {g["name"] for g in _groups(data) if g["result"] == "pass"}
    required = set()
    if RATCHET.exists():
        required = {line.strip() for line in RATCHET.read_text().splitlines()
                    if line.strip() and not line.startswith("#")}
    if args.update:
        RATCHET.write_text("# conformance groups that must keep passing (tools/conformance.py)\n"
                           + "".join(f"{n}\n" for n in sorted(passed | required)))
    regressions = sorted(required - passed)
    new = sorted(passed - required)
    if new:
        print("conformance: newly passing (add to the ratchet):", " ".join(new))
    if regressions:
        print("conformance: REGRESSIONS:", " ".join(regressions))
        return 1
    print(f"conformance: {len(passed)} groups pass, ratchet of {len(required)} holds "
          f"(runner exit {proc.returncode})")
    return 0


def _groups(data: object) -> list[dict[str, str]]:
    if isinstance(data, dict) and "groups" in data:
        return list(data["groups"])
    if isinstance(data, list):
        return list(data)
    raise SystemExit(f"conformance: unexpected report format: {str(data)[:200]}")


if __name__ == "__main__":
    sys.exit(main())
