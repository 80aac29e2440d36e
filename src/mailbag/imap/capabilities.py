"""CAPABILITY lists (RFC 9051 §6.1.1, §7.2.2) and the ENABLE-able extensions
(RFC 5161). A capability is listed only when it works completely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbag.imap.registry import State

if TYPE_CHECKING:
    from mailbag.imap.session import Session

AFTER_AUTH = (
    "IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "IDLE", "NAMESPACE",
    "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "ID", "LIST-EXTENDED", "LIST-STATUS",
    "SPECIAL-USE", "ESEARCH", "SEARCHRES", "BINARY", "STATUS=SIZE", "UTF8=ACCEPT",
    "CONDSTORE", "WITHIN",
)
PRE_AUTH = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "IDLE", "ID")

ENABLEABLE = {"IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE"}


def capability_string(session: Session) -> str:
    if session.state is not State.NOT_AUTHENTICATED:
        return " ".join(AFTER_AUTH)
    caps = list(PRE_AUTH)
    if session.ctx.tls_context is not None and not session.tls_active:
        caps.append("STARTTLS")
    if session.secure:
        caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
    else:
        caps.append("LOGINDISABLED")
    return " ".join(caps)
