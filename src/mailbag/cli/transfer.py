"""``mailbag import mbox|maildir|imap`` and ``mailbag export``.

Exit status of an import: 0 when everything was imported (or already was),
2 when it finished but skipped something (listed in the summary), 1 on an
error or an abort (e.g. over quota; run it again to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket
import sys
from pathlib import Path

from mailbag.cli.common import CliError, add_common_options, config_from_args, opened_store
from mailbag.config import Config
from mailbag.store.api import Account, Store
from mailbag.transfer.exporter import ExportError, export_account
from mailbag.transfer.importer import Importer, ImportReport, journal_path
from mailbag.transfer.journal import Journal
from mailbag.transfer.model import Source

EXIT_SKIPPED = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = subparsers.add_parser("import", help="import mail from mbox, Maildir or an IMAP server")
    kinds = imp.add_subparsers(dest="source_kind", metavar="SOURCE", required=True)

    mbox = kinds.add_parser("mbox", help="an mbox file, or a directory of them (NAME.mbox)")
    mbox.add_argument("path", type=Path)
    _import_options(mbox)
    _keep_headers(mbox, "Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase, Content-Length")

    md = kinds.add_parser("maildir", help="a Maildir, or a Maildir++ / nested tree of them")
    md.add_argument("path", type=Path)
    _import_options(md)
    _keep_headers(md, "mbsync's X-TUID")

    imap = kinds.add_parser("imap", help="every folder of a remote IMAP account")
    imap.add_argument("host")
    imap.add_argument("--port", type=int, help="default 993 (implicit TLS) or 143")
    imap.add_argument("--login", required=True, metavar="NAME", help="the remote user name")
    secret = imap.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password-file", type=Path, metavar="FILE",
                        help="read the remote password from the first line of FILE")
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the remote password as one line from stdin")
    imap.add_argument("--tls", choices=("implicit", "starttls", "none"), default="implicit",
                      help="implicit TLS (default), STARTTLS, or none (loopback hosts only)")
    imap.add_argument("--cafile", type=Path, metavar="FILE",
                      help="trust these CA certificates (PEM) for the remote server")
    imap.add_argument("--insecure", action="store_true",
                      help="do not verify the remote certificate (self-signed test servers)")
    _import_options(imap)

    exp = subparsers.add_parser("export", help="export an account as mbox files or a Maildir++ tree")
    exp.add_argument("dest", type=Path, metavar="DEST",
                     help="a directory that does not exist yet (or is empty)")
    exp.add_argument("--user", required=True, metavar="NAME")
    exp.add_argument("--format", choices=("mbox", "maildir"), required=True)
    exp.add_argument("--folder", metavar="NAME", help="export only this mailbox")
    add_common_options(exp, top_level=False)
    exp.set_defaults(func=cmd_export)


def _import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, metavar="NAME", help="the mailbag account to fill")
    p.add_argument("--folder", metavar="NAME",
                   help="destination: the source's inbox (or single folder) goes here and "
                        "its other folders below it (default: INBOX and the top level)")
    p.add_argument("--dry-run", action="store_true",
                   help="read everything and report what would happen; write nothing")
    add_common_options(p, top_level=False)
    p.set_defaults(func=cmd_import, keep_headers=False)


def _keep_headers(p: argparse.ArgumentParser, which: str) -> None:
    p.add_argument("--keep-headers", action="store_true",
                   help=f"keep the bookkeeping headers ({which}) in the stored messages")


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
    else:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                line = f.readline()
        except OSError as e:
            raise CliError(f"--password-file {args.password_file}: {e.strerror or e}") from None
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise CliError("empty remote password")
    return password


def _source(args: argparse.Namespace) -> Source:
    if args.source_kind in ("mbox", "maildir"):
        path: Path = args.path
        if not path.exists():
            raise CliError(f"{path}: no such file or directory")
        if args.source_kind == "mbox":
            from mailbag.transfer.mbox import MboxSource

            return MboxSource(path, keep_headers=args.keep_headers)
        from mailbag.transfer.maildir import MaildirSource

        if not path.is_dir():
            raise CliError(f"{path}: not a directory")
        return MaildirSource(path, keep_headers=args.keep_headers)
    from mailbag.transfer.imapsource import ImapSettings, ImapSource, ImapSourceError

    if args.tls == "none" and not _is_loopback(args.host):
        raise CliError(f"--tls none sends the password in clear text; refused for {args.host} "
                       "(only loopback hosts); use --tls starttls or implicit")
    port = args.port or (993 if args.tls == "implicit" else 143)
    settings = ImapSettings(host=args.host, port=port, login=args.login,
                            password=_read_password(args), tls=args.tls, cafile=args.cafile,
                            verify=not args.insecure)
    try:
        return ImapSource(settings)
    except ImapSourceError as e:
        raise CliError(f"imap: {e}") from None


async def _account(store: Store, name: str) -> Account:
    account = await store.get_account(name)
    if account is None:
        raise CliError(f"no such user {name} (create it with `mailbag user add {name}`)")
    return account


def cmd_import(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.dry_run and not (config.data_dir / "mailbag.sqlite3").exists():
        raise CliError(f"no mailbag store in {config.data_dir}")
    source = _source(args)
    try:
        report = asyncio.run(_run_import(config, args, source))
    finally:
        source.close()
    print(report.summary())
    if report.aborted:
        return 1
    return EXIT_SKIPPED if report.skipped else 0


async def _run_import(config: Config, args: argparse.Namespace, source: Source) -> ImportReport:
    from mailbag.transfer.imapsource import ImapSourceError

    async with opened_store(config) as store:
        account = await _account(store, args.user)
        journal = Journal(journal_path(config.data_dir), account.name, source.identity,
                          readonly=args.dry_run)
        try:
            importer = Importer(store, source, account, journal, prefix=args.folder,
                                dry_run=args.dry_run)
            try:
                return await importer.run()
            except (ImapSourceError, OSError) as e:
                importer.report.aborted = str(e)
                return importer.report
        finally:
            journal.close()


def cmd_export(args: argparse.Namespace) -> int:
    config = config_from_args(args)

    async def run() -> str:
        async with opened_store(config) as store:
            account = await _account(store, args.user)
            try:
                report = await export_account(store, account, args.dest, args.format,
                                              folder=args.folder)
            except ExportError as e:
                raise CliError(str(e)) from None
            return report.summary()

    print(asyncio.run(run()))
    return 0
