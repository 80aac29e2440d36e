"""CAPABILITY lists (RFC 9051 §6.1.1, §7.2.2), APPENDLIMIT=n (RFC 7889 §3.1)
and the ENABLE-able extensions (RFC 5161). A capability is listed only when
it works completely.
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
    "CONDSTORE", "QRESYNC", "WITHIN",
    "SORT", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT",
    "MULTIAPPEND", "CATENATE", "CONTEXT=SEARCH", "CONTEXT=SORT",
    "QUOTA", "QUOTA=RES-STORAGE", "PREVIEW", "SAVEDATE", "OBJECTID", "CREATE-SPECIAL-USE",
    "COMPRESS=DEFLATE", "NOTIFY",
)
PRE_AUTH = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "IDLE", "ID")

ENABLEABLE = {"IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC"}


def literal_capability(session: Session) -> str:
    """LITERAL- when non-synchronizing literals are capped at 4096 octets,
    else LITERAL+ (RFC 7888 §5: a server never advertises both)."""
    from mailbag.config import NONSYNC_LITERAL_MINUS

    cap = session.ctx.config.limits.nonsync_literal_max
    return "LITERAL-" if 0 < cap <= NONSYNC_LITERAL_MINUS else "LITERAL+"


def capability_string(session: Session) -> str:
    literal = literal_capability(session)
    if session.state is not State.NOT_AUTHENTICATED:
        after = [literal if c == "LITERAL+" else c for c in AFTER_AUTH]
        return " ".join(after) + f" APPENDLIMIT={append_limit(session)}"
    caps = [literal if c == "LITERAL+" else c for c in PRE_AUTH]
    if session.ctx.tls_context is not None and not session.tls_active:
        caps.append("STARTTLS")
    if session.secure:
        caps += [f"AUTH={name}" for name in _mechanisms(session)]
    else:
        caps.append("LOGINDISABLED")
    return " ".join(caps)


def append_limit(session: Session) -> int:
    """The largest message APPEND accepts (RFC 7889): one literal of at most
    limits.max_literal, inside a command of at most the parser's
    max_command_size together with the command line itself."""
    from mailbag.wire.limits import Limits

    limits = session.ctx.config.limits
    return min(limits.max_literal, Limits().max_command_size - limits.max_line)


def _mechanisms(session: Session) -> list[str]:
    """SASL mechanisms offered here (auth/sasl.py available_mechanisms):
    SCRAM-SHA-256-PLUS only over TLS with a tls-exporter value, OAUTHBEARER
    and XOAUTH2 only with [oauth] issuers configured."""
    from mailbag.auth.exchange import mechanism_context
    from mailbag.auth.sasl import available_mechanisms

    ssl_object = session.writer.get_extra_info("ssl_object") if session.tls_active else None
    return available_mechanisms(mechanism_context(session.ctx.config, True, ssl_object))
