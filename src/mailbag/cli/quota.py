"""``mailbag quota set USER SIZE|none`` and ``mailbag quota show USER``:
per-account storage limits (the STORAGE resource of RFC 9208 §5.1).

Only an administrator sets quotas; IMAP SETQUOTA is refused (NOPERM). The
limit counts RFC822.SIZE of every message in every mailbox of the account;
APPEND, COPY, MOVE and delivery refuse to go beyond it. A new limit below
the current usage is allowed: nothing is deleted, new mail is refused.
"""

from __future__ import annotations

import argparse
import re

from mailbag.auth.usernames import normalize_username
from mailbag.cli.common import (
    CliError,
    add_common_options,
    config_from_args,
    with_account,
)
from mailbag.store.api import Account, Store

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2,
          "MIB": 1024**2, "G": 1024**3, "GB": 1024**3, "GIB": 1024**3, "T": 1024**4,
          "TB": 1024**4, "TIB": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*\Z")
# SQLite integers are 64-bit signed.
MAX_QUOTA = 2**63 - 1


def parse_size(text: str) -> int | None:
    """'500M', '2G', '1.5GiB', '1048576' (bytes; units are powers of 1024),
    or 'none'/'unlimited' for no limit."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    m = _SIZE.match(text)
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in _UNITS:
        raise CliError(f"{text!r}: not a size (e.g. 500M, 2G, 1048576) or 'none'")
    number, factor = m.group(1), _UNITS[unit]
    # Whole numbers stay exact; "1.5G" is rounded down to a byte.
    size = int(float(number) * factor) if "." in number else int(number) * factor
    if size > MAX_QUOTA:
        raise CliError(f"{text!r}: too large")
    return size


def human(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quota = subparsers.add_parser("quota", help="show or set an account's storage quota")
    commands = quota.add_subparsers(dest="quota_command", metavar="COMMAND", required=True)

    set_ = commands.add_parser("set", help="set USER's storage limit (or 'none')")
    set_.add_argument("user")
    set_.add_argument("size", help="bytes, or with a unit: 500M, 2G (powers of 1024); 'none'")
    add_common_options(set_, top_level=False)
    set_.set_defaults(func=cmd_set)

    show = commands.add_parser("show", help="show USER's usage and limit")
    show.add_argument("user")
    add_common_options(show, top_level=False)
    show.set_defaults(func=cmd_show)


def cmd_set(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = normalize_username(args.user)
    size = parse_size(args.size)

    with_account(config, name, lambda store, account: store.set_quota(account.id, size))
    print(f"quota {name}: {'none' if size is None else f'{size} bytes ({human(size)})'}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = normalize_username(args.user)

    async def usage(store: Store, account: Account) -> tuple[int, int | None]:
        return await store.quota_usage(account.id), account.quota_bytes

    used, limit = with_account(config, name, usage)
    if limit is None:
        print(f"{name}: {used} bytes used ({human(used)}), no limit")
    else:
        pct = 100.0 * used / limit if limit else 100.0
        print(f"{name}: {used} of {limit} bytes used ({human(used)} of {human(limit)}, "
              f"{pct:.0f}%)")
    return 0
