"""The ``mailbag`` command: argparse front for the admin sub-commands.

One module per command family registers its sub-parser; each command
function takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mailbag.cli import alias, app_password, deliver, quota, serve, transfer, user
from mailbag.cli.common import CliError, add_common_options, fail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbag", description="mailbag: an IMAP mail-access server"
    )
    add_common_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(subparsers)
    user.register(subparsers)
    app_password.register(subparsers)
    transfer.register(subparsers)
    alias.register(subparsers)
    quota.register(subparsers)
    deliver.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except CliError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    raise SystemExit(main())
