"""What every admin command shares: options, config loading, opening the store."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from mailbag.config import Config, ConfigError, load_config
from mailbag.store.api import Account, Store

T = TypeVar("T")


class CliError(Exception):
    """A problem to report in one line on stderr, exiting with status 1."""


def add_common_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    # On sub-commands the default is SUPPRESS, so that `mailbag --config F user list`
    # is not overwritten by the sub-command's own (absent) option.
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--config", type=Path, metavar="FILE", default=default,
        help="TOML config file (default: built-in defaults)",
    )
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR", default=default,
        help="override the config's data_dir",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        raise CliError(f"config: {e}") from None
    if args.data_dir is not None:
        config = dataclasses.replace(config, data_dir=args.data_dir)
    return config


def make_store(config: Config) -> Store:
    """The embedded store for ``config`` (the only backend so far)."""
    from mailbag.store.sqlite import SqliteStore  # lazily: not needed for --help

    store: Store = SqliteStore(config.data_dir)
    return store


@asynccontextmanager
async def opened_store(config: Config) -> AsyncIterator[Store]:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = make_store(config)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def with_account(config: Config, name: str,
                 action: Callable[[Store, Account], Awaitable[T]]) -> T:
    """``action(store, account)`` for the account called *name*, with the
    store opened for it; CliError when there is no such account."""
    async def run() -> T:
        async with opened_store(config) as store:
            account = await store.get_account(name)
            if account is None:
                raise CliError(f"no such user {name}")
            return await action(store, account)

    return asyncio.run(run())


def fail(message: str) -> int:
    print(f"mailbag: {message}", file=sys.stderr)
    return 1
