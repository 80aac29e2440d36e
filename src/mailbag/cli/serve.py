"""``mailbag serve``: run the server in the foreground."""

from __future__ import annotations

import argparse

from mailbag.cli.common import add_common_options, config_from_args
from mailbag.log import configure_logging


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the IMAP server in the foreground")
    add_common_options(serve, top_level=False)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log_level)
    # Imported here: the server pulls in every protocol module, which the
    # user-management commands do not need.
    from mailbag.server import run

    return run(config)
