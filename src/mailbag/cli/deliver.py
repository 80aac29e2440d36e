"""``mailbag deliver --user NAME [--folder X] [--from ADDR]``: deliver one
message read from standard input, for an MTA's ``mailbox_command`` (Postfix
local(8)) or a ``pipe(8)`` transport, like dovecot-lda.

When the server is running and listens on its LMTP Unix socket, the message
goes through that socket, so the running server stores it and every IDLEing
IMAP client hears of it at once; otherwise the store is opened directly. Both
end in the same delivery code (lmtp/delivery.py).

Exit codes (sysexits.h, which MTAs map to bounce or retry): 0 delivered,
65 EX_DATAERR (empty or oversized message), 67 EX_NOUSER (no such user),
69 EX_UNAVAILABLE (refused for another reason), 73 EX_CANTCREAT (mailbox
full), 75 EX_TEMPFAIL (try again later: store unavailable, or over quota with
lmtp.quota_tempfail).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import smtplib
import socket
import sys
from datetime import datetime

from mailbag.cli.common import add_common_options, config_from_args, opened_store
from mailbag.config import Config
from mailbag.lmtp.addresses import Resolver, Unknown
from mailbag.lmtp.codec import Reply, xtext_encode
from mailbag.lmtp.delivery import Envelope, deliver, over_quota, quota_reply
from mailbag.lmtp.listeners import socket_path

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_CANTCREAT = 73
EX_TEMPFAIL = 75

_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})\b")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "deliver", help="deliver a message from stdin (for an MTA's mailbox_command)"
    )
    p.add_argument("--user", "-d", required=True,
                   help="account, alias or address (alice, alice+lists, a@example.org)")
    p.add_argument("--folder", "-m", help="folder to deliver into (INBOX if it does not exist)")
    p.add_argument("--from", "-f", dest="sender", default=None,
                   help="envelope sender for Return-Path (default: $SENDER, else <>)")
    add_common_options(p, top_level=False)
    p.set_defaults(func=cmd_deliver)


def exit_code(code: int, status: str) -> int:
    """The sysexits code for an LMTP reply."""
    if code < 400:
        return EX_OK
    if code < 500:
        return EX_TEMPFAIL
    if status.startswith("5.1.") or status == "5.2.1":
        return EX_NOUSER
    if status == "5.2.2":
        return EX_CANTCREAT
    if status.startswith(("5.3.4", "5.6.")):
        return EX_DATAERR
    return EX_UNAVAILABLE


def _status_of(text: str) -> str:
    m = _STATUS.match(text)
    return m.group(0) if m else ""


def normalize(raw: bytes) -> bytes:
    """An mbox ``From `` envelope line is dropped (as dovecot-lda does) and
    bare LF line ends become CRLF, the form IMAP serves (RFC 5322 §2.3)."""
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    if b"\n" in raw and b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")
    elif b"\n" in raw:
        raw = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    if raw and not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw


def cmd_deliver(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except Exception as exc:  # noqa: BLE001 - a broken config must not bounce mail
        print(f"mailbag deliver: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    limit = config.lmtp.max_message_size
    raw = normalize(sys.stdin.buffer.read(limit + 1))
    if not raw.strip():
        print("mailbag deliver: empty message on standard input", file=sys.stderr)
        return EX_DATAERR
    if len(raw) > limit:
        print(f"mailbag deliver: message larger than {limit} octets", file=sys.stderr)
        return EX_DATAERR
    sender = args.sender if args.sender is not None else os.environ.get("SENDER", "")
    sender = sender.strip().strip("<>")
    user = args.user.strip()
    path = socket_path(config)
    if config.lmtp.unix and path.exists():
        result = via_socket(str(path), sender, user, args.folder, raw)
        if result is not None:
            return _report(*result)
    try:
        return _report(*asyncio.run(direct(config, sender, user, args.folder, raw)))
    except Exception as exc:  # noqa: BLE001 - the MTA must retry, not bounce
        print(f"mailbag deliver: cannot store the message: {exc}", file=sys.stderr)
        return EX_TEMPFAIL


def _report(code: int, text: str) -> int:
    status = exit_code(code, _status_of(text))
    if status != EX_OK:
        print(f"mailbag deliver: {code} {text}", file=sys.stderr)
    return status


def via_socket(
    path: str, sender: str, user: str, folder: str | None, raw: bytes
) -> tuple[int, str] | None:
    """Deliver through the running server; None when nobody listens."""
    try:
        client = smtplib.LMTP(path, timeout=300)
    except OSError:
        return None
    try:
        client.ehlo_or_helo_if_needed()
        options = ["BODY=8BITMIME"]
        if not (sender + user).isascii():
            options.append("SMTPUTF8")
        code, msg = client.mail(sender, options)
        if code != 250:
            return code, msg.decode("utf-8", "replace")
        rcpt_options = [f"X-FOLDER={xtext_encode(folder)}"] if folder else []
        code, msg = client.rcpt(user, rcpt_options)
        if code != 250:
            return code, msg.decode("utf-8", "replace")
        code, msg = client.data(raw)
        return code, msg.decode("utf-8", "replace")
    except smtplib.SMTPResponseException as exc:
        err = exc.smtp_error
        return exc.smtp_code, err.decode("utf-8", "replace") if isinstance(err, bytes) else err
    except (OSError, smtplib.SMTPException) as exc:
        return 451, f"4.4.2 lost the server's LMTP socket: {exc}"
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


async def direct(
    config: Config, sender: str, user: str, folder: str | None, raw: bytes
) -> tuple[int, str]:
    local, _, domain = user.rpartition("@") if "@" in user else (user, "", "")
    async with opened_store(config) as store:
        resolver = Resolver(store, config.lmtp)
        try:
            rcpt = await resolver.resolve(user, local, domain, folder)
        except Unknown as exc:
            return 550, f"{exc.status} <{user}> {exc.text}"
        if await over_quota(store, rcpt, len(raw)):
            q = quota_reply(config.lmtp.quota_tempfail)
            return q.code, f"{q.status} {q.text}"
        env = Envelope(sender=sender, helo="localhost", peer=None,
                       hostname=config.lmtp.hostname or socket.gethostname(),
                       session_id=f"deliver.{os.getpid():x}", protocol="local")
        replies: list[Reply] = await deliver(store, env, [rcpt], raw,
                                             datetime.now().astimezone(),
                                             quota_tempfail=config.lmtp.quota_tempfail)
        r = replies[0]
        return r.code, f"{r.status} {r.text}"
