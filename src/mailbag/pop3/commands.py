"""CAPA (RFC 2449 §5), NOOP, QUIT and the TRANSACTION commands of RFC 1939
§5-§7: STAT, LIST, RETR, TOP, UIDL, DELE, RSET; QUIT enters the UPDATE
state (§6).

Message numbers always refer to the snapshot taken at login; a DELE'd message
keeps its number and answers "-ERR ... is deleted" until RSET.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailbag.log import log_event
from mailbag.pop3.auth import POP3_MECHANISMS
from mailbag.pop3.codec import Command, dot_stuff, multiline, ok, to_wire, top
from mailbag.pop3.maildrop import MessageGone, Pop3Message
from mailbag.pop3.registry import BOTH, TRANSACTION, Pop3Error, State, command
from mailbag.store.api import StoreError

if TYPE_CHECKING:
    from mailbag.pop3.session import Pop3Session

log = logging.getLogger("mailbag.pop3")

# Longer than any 32-bit count; refuses "LIST 99999...9" before int().
MAX_NUMBER_DIGITS = 10


def _parse_count(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > MAX_NUMBER_DIGITS:
        raise Pop3Error(f"Invalid {what} {text[:20]!r}: expected a non-negative number")
    return int(text)


def _message(s: Pop3Session, text: str) -> Pop3Message:
    number = _parse_count(text, "message number")
    msg = s.require_maildrop().get(number)
    if msg is None:
        raise Pop3Error(f"No message {number}")
    if msg.deleted:
        raise Pop3Error(f"Message {number} is deleted")
    return msg


def _args(cmd: Command, least: int, most: int, usage: str) -> list[str]:
    args = cmd.args()
    if not least <= len(args) <= most:
        raise Pop3Error(f"Usage: {usage}")
    return args


async def _content(s: Pop3Session, msg: Pop3Message) -> bytes:
    try:
        raw = await s.require_maildrop().read(msg)
    except MessageGone:
        raise Pop3Error(
            f"Message {msg.number} is no longer available (expunged by another client)"
        ) from None
    return to_wire(raw)


@command("CAPA", BOTH)
async def capa(s: Pop3Session, cmd: Command) -> None:
    caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
    if s.state is State.AUTHORIZATION:
        if s.secure:
            caps += ["USER", "SASL " + " ".join(POP3_MECHANISMS)]
        if s.ctx.tls_context is not None and not s.tls_active:
            caps.append("STLS")
    caps.append("IMPLEMENTATION mailbag")
    s.send(multiline(ok("Capability list follows"), caps))


@command("NOOP", TRANSACTION)
async def noop(s: Pop3Session, cmd: Command) -> None:
    s.send(ok())


@command("QUIT", BOTH)
async def quit_(s: Pop3Session, cmd: Command) -> None:
    s.closing = True
    drop, account = s.maildrop, s.account
    if s.state is not State.TRANSACTION or drop is None or account is None:
        s.send(ok("Bye"))
        return
    s.state = State.UPDATE
    try:
        result = await drop.update()
    except StoreError as exc:
        # RFC 1939 §6: say so when the UPDATE state could not remove them.
        log_event(log, "pop3-update-failed", level=logging.WARNING,
                  user=account.name, error=str(exc))
        raise Pop3Error("Some deleted messages were not removed; try again later",
                        "SYS/TEMP") from None
    log_event(log, "pop3-logout", user=account.name, rip=s.remote_ip,
              expunged=result.expunged, seen=result.seen,
              retrieved_octets=s.retrieved_octets)
    s.send(ok(f"Bye; {result.expunged} messages deleted"))


@command("STAT", TRANSACTION)
async def stat(s: Pop3Session, cmd: Command) -> None:
    _args(cmd, 0, 0, "STAT")
    count, size = s.require_maildrop().stat()
    s.send(ok(f"{count} {size}"))


@command("LIST", TRANSACTION)
async def list_(s: Pop3Session, cmd: Command) -> None:
    args = _args(cmd, 0, 1, "LIST [message-number]")
    if args:
        msg = _message(s, args[0])
        s.send(ok(f"{msg.number} {msg.size}"))
        return
    drop = s.require_maildrop()
    count, size = drop.stat()
    s.send(multiline(ok(f"{count} messages ({size} octets)"),
                     [f"{m.number} {m.size}" for m in drop.live()]))


@command("UIDL", TRANSACTION)
async def uidl(s: Pop3Session, cmd: Command) -> None:
    args = _args(cmd, 0, 1, "UIDL [message-number]")
    if args:
        msg = _message(s, args[0])
        s.send(ok(f"{msg.number} {msg.unique_id}"))
        return
    drop = s.require_maildrop()
    s.send(multiline(ok("Unique-id listing follows"),
                     [f"{m.number} {m.unique_id}" for m in drop.live()]))


@command("RETR", TRANSACTION)
async def retr(s: Pop3Session, cmd: Command) -> None:
    args = _args(cmd, 1, 1, "RETR message-number")
    msg = _message(s, args[0])
    data = await _content(s, msg)
    s.send(ok(f"{len(data)} octets"))
    await s.send_large(dot_stuff(data))
    msg.retrieved = True
    s.retrieved_octets += len(data)


@command("TOP", TRANSACTION)
async def top_(s: Pop3Session, cmd: Command) -> None:
    args = _args(cmd, 2, 2, "TOP message-number lines")
    msg = _message(s, args[0])
    lines = _parse_count(args[1], "line count")
    data = top(await _content(s, msg), lines)
    s.send(ok("Top of message follows"))
    await s.send_large(dot_stuff(data))


@command("DELE", TRANSACTION)
async def dele(s: Pop3Session, cmd: Command) -> None:
    args = _args(cmd, 1, 1, "DELE message-number")
    msg = _message(s, args[0])
    msg.deleted = True
    s.send(ok(f"Message {msg.number} deleted"))


@command("RSET", TRANSACTION)
async def rset(s: Pop3Session, cmd: Command) -> None:
    _args(cmd, 0, 0, "RSET")
    drop = s.require_maildrop()
    drop.reset()
    count, size = drop.stat()
    s.send(ok(f"Maildrop has {count} messages ({size} octets)"))
