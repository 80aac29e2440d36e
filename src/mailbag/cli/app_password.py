"""``mailbag app-password add|list|revoke``: per-device passwords (docs/auth.md).

``add`` prints the generated secret once; only its argon2id hash is stored.
``revoke`` refuses new logins at once; a running server notices within
``[auth] revocation_check`` seconds and closes the device's open sessions.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from mailbag.auth import app_passwords
from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.usernames import InvalidUsername, validate_username
from mailbag.cli.common import (
    CliError,
    add_common_options,
    config_from_args,
    with_account,
)
from mailbag.store.api import Account, AlreadyExists, NotFound, Store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("app-password", help="manage per-device app passwords")
    commands = parser.add_subparsers(dest="app_password_command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="create an app password and print it once")
    add.add_argument("name", metavar="USER")
    add.add_argument("label", metavar="LABEL", help="names the device, e.g. 'phone'")
    add_common_options(add, top_level=False)
    add.set_defaults(func=cmd_add)

    listing = commands.add_parser("list", help="list an account's app passwords")
    listing.add_argument("name", metavar="USER")
    listing.add_argument("--all", action="store_true", help="include revoked ones")
    add_common_options(listing, top_level=False)
    listing.set_defaults(func=cmd_list)

    revoke = commands.add_parser("revoke", help="revoke an app password and end its sessions")
    revoke.add_argument("name", metavar="USER")
    revoke.add_argument("label", metavar="LABEL")
    add_common_options(revoke, top_level=False)
    revoke.set_defaults(func=cmd_revoke)


def _name(args: argparse.Namespace) -> str:
    try:
        return validate_username(args.name)
    except InvalidUsername as e:
        raise CliError(f"{args.name!r}: {e}") from None


def _label(args: argparse.Namespace) -> str:
    try:
        return app_passwords.validate_label(args.label)
    except ValueError as e:
        raise CliError(f"label {args.label!r}: {e}") from None


def cmd_add(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name, label = _name(args), _label(args)
    secret = app_passwords.generate()
    canonical = app_passwords.normalize(secret.encode())
    assert canonical is not None
    password_hash = PasswordHasher(config.argon2, workers=1).hash(canonical.encode())

    async def add(store: Store, account: Account) -> None:
        try:
            await store.add_app_password(
                account.id, label, app_passwords.selector(canonical), password_hash
            )
        except AlreadyExists:
            raise CliError(f"{name} already has an app password labelled {label!r}") from None

    with_account(config, name, add)
    print(f"app password for {name} ({label}): {secret}")
    print("It is shown only this once; enter it in the device's mail settings.")
    return 0


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%SZ") if t is not None else "never"


def cmd_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)

    rows = with_account(config, name, lambda store, account: store.list_app_passwords(
        account.id, include_revoked=args.all))
    if not rows:
        print(f"{name} has no app passwords")
        return 0
    table = [("LABEL", "CREATED", "LAST USED", "FROM", "")]
    for ap in rows:
        table.append((
            ap.label, _when(ap.created), _when(ap.last_used), ap.last_ip or "-",
            f"revoked {_when(ap.revoked)}" if ap.revoked else "",
        ))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)).rstrip()
              + (f"  {r[4]}" if r[4] else ""))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name, label = _name(args), _label(args)

    async def revoke(store: Store, account: Account) -> None:
        try:
            await store.revoke_app_password(account.id, label)
        except NotFound:
            raise CliError(f"{name} has no app password labelled {label!r}") from None

    with_account(config, name, revoke)
    print(f"revoked the app password {label!r} of {name}; its open sessions end within "
          f"{config.auth.revocation_check:g} seconds")
    return 0
