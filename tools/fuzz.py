"""Run the fuzz targets of tests/fuzz for a while (not part of `make test`).

    .venv/bin/python tools/fuzz.py --minutes 10            # every target
    .venv/bin/python tools/fuzz.py --minutes 2 --only mime

Drives the hypothesis tests of tests/fuzz/test_fuzz_*.py through
``fuzz_one_input`` with random buffers, round-robin, until the time is up.
A failure is printed with the input hypothesis built from the buffer, the
buffer is saved under ``var/fuzz-failures/`` (replay it with ``--replay
FILE``), and the exit status is 1.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "tests" / "fuzz"
TARGETS = {
    "wire": ("test_fuzz_wire", ["test_parser_survives_anything"]),
    "sasl": ("test_fuzz_sasl", ["test_mechanisms_only_fail_as_documented",
                                "test_scram_with_structured_messages", "test_response_decoder"]),
    "mime": ("test_fuzz_mime", ["test_mutated_corpus_messages_parse"]),
}


def load(only: list[str]) -> list[tuple[str, object]]:
    sys.path.insert(0, str(FUZZ_DIR))
    out = []
    for key, (module, names) in TARGETS.items():
        if only and key not in only:
            continue
        mod = importlib.import_module(module)
        out += [(f"{key}:{name}", getattr(mod, name)) for name in names]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="how long to run (default 5)")
    ap.add_argument("--only", action="append", choices=sorted(TARGETS), default=[],
                    help="run only this target (repeatable)")
    ap.add_argument("--replay", type=Path, help="run one saved failing buffer and stop")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "fuzz-failures")
    args = ap.parse_args(argv)
    targets = load(args.only)
    if args.replay is not None:
        name, _, _ = args.replay.name.partition("--")
        fn = dict(targets)[name.replace("__", ":")]
        fn.hypothesis.fuzz_one_input(args.replay.read_bytes())  # type: ignore[attr-defined]
        print("no failure")
        return 0
    deadline = time.monotonic() + args.minutes * 60
    runs = dict.fromkeys((n for n, _ in targets), 0)
    i = 0
    while time.monotonic() < deadline:
        name, fn = targets[i % len(targets)]
        i += 1
        buf = os.urandom(int.from_bytes(os.urandom(2), "big") % 8192 + 16)
        try:
            fn.hypothesis.fuzz_one_input(buf)  # type: ignore[attr-defined]
        except Exception:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"{name.replace(':', '__')}--{hashlib.sha256(buf).hexdigest()[:16]}"
            path.write_bytes(buf)
            traceback.print_exc()
            print(f"\nFAILED {name}; input saved to {path} (replay: tools/fuzz.py --replay {path})")
            return 1
        runs[name] += 1
    total = sum(runs.values())
    print(f"{total} inputs in {args.minutes:g} min, no failure:")
    for name, n in runs.items():
        print(f"  {name}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
