"""``mailbag alias add|del|list``: delivery aliases (LMTP, ``mailbag deliver``).

An alias is a full address (``sales@example.org``) or a bare local part
(``postmaster``: every local domain) that delivers to an account; see
docs/postfix.md "Addresses" for the lookup order.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from mailbag.auth.usernames import normalize_username
from mailbag.cli.common import (
    CliError,
    add_common_options,
    config_from_args,
    opened_store,
    with_account,
)
from mailbag.store.api import Account, AlreadyExists, NotFound, Store

# No space, angle brackets or controls: an alias is matched against the
# address of an RCPT TO, lower-cased.
_ALIAS = re.compile(r"[^\s<>()\[\],;:\"\\@]+(@[^\s<>()\[\],;:\"\\@]+)?\Z")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alias = subparsers.add_parser("alias", help="manage delivery aliases")
    commands = alias.add_subparsers(dest="alias_command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="deliver mail for ADDRESS to account USER")
    add.add_argument("address", help="local@domain, or a bare local part for every domain")
    add.add_argument("user")
    add_common_options(add, top_level=False)
    add.set_defaults(func=cmd_add)

    delete = commands.add_parser("del", help="remove an alias")
    delete.add_argument("address")
    add_common_options(delete, top_level=False)
    delete.set_defaults(func=cmd_del)

    listing = commands.add_parser("list", help="list aliases")
    add_common_options(listing, top_level=False)
    listing.set_defaults(func=cmd_list)


def _address(text: str) -> str:
    address = text.strip().lower()
    if not _ALIAS.match(address):
        raise CliError(f"{text!r}: not an address (local@domain) or a local part")
    return address


def cmd_add(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    address = _address(args.address)
    name = normalize_username(args.user)

    async def add(store: Store, account: Account) -> None:
        if await store.get_account(address) is not None:
            raise CliError(f"{address} is an account name; an alias would never be used")
        try:
            await store.add_alias(address, account.id)
        except AlreadyExists:
            raise CliError(f"alias {address} exists") from None

    with_account(config, name, add)
    print(f"alias {address} -> {name}")
    return 0


def cmd_del(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    address = _address(args.address)

    async def run() -> None:
        async with opened_store(config) as store:
            try:
                await store.delete_alias(address)
            except NotFound:
                raise CliError(f"no alias {address}") from None

    asyncio.run(run())
    print(f"deleted alias {address}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def run() -> None:
        async with opened_store(config) as store:
            for alias in await store.list_aliases():
                print(f"{alias.address}\t{alias.account}")

    asyncio.run(run())
    return 0
