#!/usr/bin/env python3
"""Summarise a py-spy collapsed-stack file (bench/run.py --profile DIR):
top functions by self and by inclusive samples.

    .venv/bin/python bench/profile_top.py DIR/minimal-search_from.txt [--top 25]
"""
import argparse
import collections
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--filter", help="only count stacks containing this text")
    args = ap.parse_args()
    for path in args.files:
        self_c: collections.Counter[str] = collections.Counter()
        incl: collections.Counter[str] = collections.Counter()
        total = 0
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"(.*) (\d+)$", line.rstrip("\n"))
                if not m:
                    continue
                stack, n = m.group(1), int(m.group(2))
                if args.filter and args.filter not in stack:
                    continue
                frames = [fr for fr in stack.split(";") if not fr.startswith(("process ", "thread "))]
                if not frames:
                    continue
                total += n
                self_c[frames[-1]] += n
                for fr in set(frames):
                    incl[fr] += n
        print(f"== {path}: {total} samples")
        if not total:
            continue
        print("-- self")
        for fr, n in self_c.most_common(args.top):
            print(f"{n / total:6.1%}  {fr}")
        print("-- inclusive")
        for fr, n in incl.most_common(args.top):
            print(f"{n / total:6.1%}  {fr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
