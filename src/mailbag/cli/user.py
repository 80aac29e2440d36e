"""``mailbag user add|passwd|del|list``: manage accounts in the store;
``user totp enroll|remove`` and ``user second-factor`` (docs/auth.md).

Setting a password also stores its SCRAM-SHA-256 secrets (RFC 5802/7677),
so SCRAM works for the account at once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys

from mailbag.auth import totp
from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.scram import make_credential
from mailbag.auth.usernames import InvalidUsername, validate_username
from mailbag.cli.common import (
    CliError,
    add_common_options,
    config_from_args,
    opened_store,
    with_account,
)
from mailbag.config import Config
from mailbag.store.api import Account, AlreadyExists, Store

GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 bits


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = subparsers.add_parser("user", help="manage accounts")
    commands = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="create an account")
    add.add_argument("name")
    source = add.add_mutually_exclusive_group()
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password as one line from stdin"
    )
    source.add_argument(
        "--generate", action="store_true", help="generate a random password and print it"
    )
    add_common_options(add, top_level=False)
    add.set_defaults(func=cmd_add)

    passwd = commands.add_parser("passwd", help="change an account's password")
    passwd.add_argument("name")
    passwd_source = passwd.add_mutually_exclusive_group()
    passwd_source.add_argument(
        "--password-stdin", action="store_true", help="read the password as one line from stdin"
    )
    passwd_source.add_argument(
        "--generate", action="store_true", help="generate a random password and print it"
    )
    add_common_options(passwd, top_level=False)
    passwd.set_defaults(func=cmd_passwd)

    delete = commands.add_parser("del", help="delete an account and all its mail")
    delete.add_argument("name")
    add_common_options(delete, top_level=False)
    delete.set_defaults(func=cmd_del)

    listing = commands.add_parser("list", help="list accounts")
    add_common_options(listing, top_level=False)
    listing.set_defaults(func=cmd_list)

    totp_parser = commands.add_parser("totp", help="one-time codes (RFC 6238) for the account")
    totp_commands = totp_parser.add_subparsers(dest="totp_command", metavar="COMMAND",
                                               required=True)
    enroll = totp_commands.add_parser(
        "enroll", help="make a new TOTP secret and print its otpauth:// URI once")
    enroll.add_argument("name")
    add_common_options(enroll, top_level=False)
    enroll.set_defaults(func=cmd_totp_enroll)
    remove = totp_commands.add_parser("remove", help="forget the TOTP secret")
    remove.add_argument("name")
    add_common_options(remove, top_level=False)
    remove.set_defaults(func=cmd_totp_remove)

    second = commands.add_parser(
        "second-factor",
        help="require (on) or stop requiring (off) a second factor with the main password")
    second.add_argument("name")
    second.add_argument("state", choices=["on", "off"])
    add_common_options(second, top_level=False)
    second.set_defaults(func=cmd_second_factor)


def _name(args: argparse.Namespace) -> str:
    try:
        return validate_username(args.name)
    except InvalidUsername as e:
        raise CliError(f"{args.name!r}: {e}") from None


def read_password(args: argparse.Namespace) -> bytes:
    """The new password from stdin, a prompt (twice) or the generator."""
    if args.generate:
        return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES).encode()
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("New password: ")
        if password and getpass.getpass("Repeat password: ") != password:
            raise CliError("the passwords do not match")
    if not password:
        raise CliError("empty password")
    return password.encode("utf-8")


def _hasher(config: Config) -> PasswordHasher:
    return PasswordHasher(config.argon2, workers=1)


def _scram(config: Config, password: bytes) -> str | None:
    """RFC 5803 SCRAM-SHA-256 secrets, or None when SASLprep refuses the
    password (then only PLAIN/LOGIN work for it)."""
    try:
        return make_credential(password, config.auth.scram_iterations).to_string()
    except ValueError as e:
        print(f"mailbag: note: no SCRAM secrets for this password ({e})", file=sys.stderr)
        return None


def cmd_add(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)
    password = read_password(args)
    password_hash = _hasher(config).hash(password)
    scram = _scram(config, password)

    async def run() -> None:
        async with opened_store(config) as store:
            if await store.get_account(name) is not None:
                raise CliError(f"user {name} exists")
            try:
                account = await store.create_account(name, password_hash)
            except AlreadyExists:
                raise CliError(f"user {name} exists") from None
            await store.set_scram_credentials(account.id, scram)

    asyncio.run(run())
    print(f"created user {name}")
    if args.generate:
        print(f"password: {password.decode()}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)

    async def find() -> bool:
        async with opened_store(config) as store:
            return await store.get_account(name) is not None

    # Check first so that nobody types a password twice for a typo'd name.
    if not asyncio.run(find()):
        raise CliError(f"no such user {name}")
    password = read_password(args)
    password_hash = _hasher(config).hash(password)
    scram = _scram(config, password)

    async def change(store: Store, account: Account) -> None:
        await store.set_password_hash(account.id, password_hash)
        # Old SCRAM secrets belong to the old password: replace or drop them.
        await store.set_scram_credentials(account.id, scram)

    with_account(config, name, change)
    print(f"changed the password of {name}")
    if args.generate:
        print(f"password: {password.decode()}")
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)

    with_account(config, name, lambda store, account: store.delete_account(account.id))
    print(f"deleted user {name}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def run() -> list[str]:
        async with opened_store(config) as store:
            accounts = await store.list_accounts()
        return [a.name + (" (disabled)" if a.disabled else "") for a in accounts]

    for line in sorted(asyncio.run(run())):
        print(line)
    return 0


def cmd_totp_enroll(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)
    secret = totp.new_secret()

    with_account(config, name, lambda store, account: store.set_totp_secret(account.id, secret))
    print(totp.provisioning_uri(secret, name))
    print(f"Scan this URI (or enter the secret {secret}) in an authenticator app; it is "
          "shown only once. With 'mailbag user second-factor "
          f"{name} on' the main password then works only followed by the current code.")
    return 0


def cmd_totp_remove(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)

    with_account(config, name, lambda store, account: store.set_totp_secret(account.id, None))
    print(f"removed the TOTP secret of {name}")
    return 0


def cmd_second_factor(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)
    required = args.state == "on"

    async def require(store: Store, account: Account) -> bool:
        await store.set_require_second_factor(account.id, required)
        return (await store.get_credentials(account.id)).totp_secret is not None

    enrolled = with_account(config, name, require)
    if not required:
        print(f"{name}: the main password works on its own again")
    elif enrolled:
        print(f"{name}: the main password now works only followed by the current TOTP code; "
              "app passwords and tokens work as before")
    else:
        print(f"{name}: the main password no longer works for IMAP/POP3 (no TOTP enrolled); "
              "use app passwords or tokens")
    return 0
