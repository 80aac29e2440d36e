"""``mailbag user add|passwd|del|list``: manage accounts in the store."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys

from mailbag.auth.passwords import PasswordHasher
from mailbag.auth.usernames import InvalidUsername, validate_username
from mailbag.cli.common import CliError, add_common_options, config_from_args, opened_store
from mailbag.config import Config
from mailbag.store.api import AlreadyExists

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
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password as one line from stdin"
    )
    add_common_options(passwd, top_level=False)
    passwd.set_defaults(func=cmd_passwd, generate=False)

    delete = commands.add_parser("del", help="delete an account and all its mail")
    delete.add_argument("name")
    add_common_options(delete, top_level=False)
    delete.set_defaults(func=cmd_del)

    listing = commands.add_parser("list", help="list accounts")
    add_common_options(listing, top_level=False)
    listing.set_defaults(func=cmd_list)


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


def cmd_add(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)
    password = read_password(args)
    password_hash = _hasher(config).hash(password)

    async def run() -> None:
        async with opened_store(config) as store:
            if await store.get_account(name) is not None:
                raise CliError(f"user {name} exists")
            try:
                await store.create_account(name, password_hash)
            except AlreadyExists:
                raise CliError(f"user {name} exists") from None

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
    password_hash = _hasher(config).hash(read_password(args))

    async def run() -> None:
        async with opened_store(config) as store:
            account = await store.get_account(name)
            if account is None:
                raise CliError(f"no such user {name}")
            await store.set_password_hash(account.id, password_hash)

    asyncio.run(run())
    print(f"changed the password of {name}")
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    name = _name(args)

    async def run() -> None:
        async with opened_store(config) as store:
            account = await store.get_account(name)
            if account is None:
                raise CliError(f"no such user {name}")
            await store.delete_account(account.id)

    asyncio.run(run())
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
