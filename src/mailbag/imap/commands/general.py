"""Commands valid in any state: CAPABILITY, NOOP, LOGOUT (RFC 9051 §6.1),
ENABLE (RFC 5161, RFC 9051 §6.3.1, RFC 7162 §3.2.3), ID (RFC 2971), CHECK (RFC 3501 §6.4.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag import __version__
from mailbag.imap.capabilities import ENABLEABLE, capability_string
from mailbag.imap.registry import ANY, AUTH, SELECTED, Reply, State, command
from mailbag.wire.commands import Capability, Check, Enable, Id, Logout, Noop
from mailbag.wire.values import encode

if TYPE_CHECKING:
    from mailbag.imap.session import Session


@command(Capability, ANY)
async def capability(s: Session, cmd: Capability) -> Reply:
    s.send(f"* CAPABILITY {capability_string(s)}\r\n".encode())
    return Reply(text="CAPABILITY completed")


@command(Noop, ANY)
async def noop(s: Session, cmd: Noop) -> Reply:
    if s.selected is not None:
        s.selected.dirty = True
    return Reply(text="NOOP completed")


@command(Check, SELECTED)
async def check(s: Session, cmd: Check) -> Reply:
    s.require_selected().dirty = True
    return Reply(text="CHECK completed")


@command(Logout, ANY)
async def logout(s: Session, cmd: Logout) -> Reply:
    s.send(b"* BYE Logging out\r\n")
    s.state = State.LOGOUT
    return Reply(text="LOGOUT completed")


@command(Enable, AUTH)
async def enable(s: Session, cmd: Enable) -> Reply:
    newly = []
    for cap in cmd.capabilities:
        # QRESYNC implies CONDSTORE (RFC 7162 §3.2.3): Session.condstore says so.
        if cap not in ENABLEABLE or cap in s.enabled:
            continue
        s.enabled.add(cap)
        newly.append(cap)
    s.send(("* ENABLED" + "".join(" " + c for c in newly) + "\r\n").encode())
    return Reply(text="ENABLE completed")


@command(Id, ANY)
async def ident(s: Session, cmd: Id) -> Reply:
    s.send(b"* ID " + encode(["name", "mailbag", "version", __version__]) + b"\r\n")
    return Reply(text="ID completed")
