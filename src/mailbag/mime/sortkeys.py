"""The keys SORT and THREAD order messages by, computed from a parsed
message: RFC 5256 §3 (SUBJECT, FROM, TO, CC with the i;ascii-casemap
comparator of RFC 4790 §9.2; §2.1 base subject and reply/forward test;
REFERENCES step 1 Message-ID/References/In-Reply-To) and RFC 5957 §3
(DISPLAYFROM, DISPLAYTO).

The store keeps them with each message at ingest (``SortKeys``), so a SORT
of a big mailbox reads a few narrow columns instead of decoding every
message's facts; imap/sort.py and imap/thread.py compute the same keys from
facts on their straightforward path, through the same functions here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from mailbag.mime.headers import decode_words
from mailbag.mime.message import Address, ParsedMessage

# i;ascii-casemap: only a-z fold; other characters compare as they are.
_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}

_MSGID = re.compile(r"<[^<>\s]+>")
_WS = re.compile(r"[ \t\r\n]+")
_REFWD_LEADER = re.compile(r"^(?:\[[^\[\]]*\][ \t]*)*(?:re|fwd?)[ \t]*(?:\[[^\[\]]*\][ \t]*)?:",
                           re.IGNORECASE)
_FWD_TRAILER = re.compile(r"\(fwd\)[ \t]*$", re.IGNORECASE)


def casemap(text: str) -> str:
    return text.translate(_ASCII_UPPER)


def first_mailbox(addresses: Sequence[Address]) -> str:
    # RFC 5256: the addr-mailbox of the first address; for a group Dovecot
    # takes the group name, which is what the group start carries.
    if not addresses:
        return ""
    return addresses[0].mailbox or ""


def display(addresses: Sequence[Address]) -> str:
    """RFC 5957 §3: the decoded display name of the first address, or its
    addr-spec when it has none."""
    if not addresses:
        return ""
    a = addresses[0]
    if a.name:
        return decode_words(a.name)
    if a.host is None:
        return a.mailbox or ""
    return f"{a.mailbox or ''}@{a.host}"


def is_reply_or_forward(subject: str) -> bool:
    """RFC 5256 §2.1: extracting the base subject removed a "Re:"/"Fwd:"
    leader, a "(fwd)" trailer or a "[fwd: ...]" wrapper."""
    s = _WS.sub(" ", subject).strip(" ")
    if _FWD_TRAILER.search(s):
        return True
    if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):
        return True
    return bool(_REFWD_LEADER.match(s))


def thread_ids(parsed: ParsedMessage) -> tuple[str | None, tuple[str, ...]]:
    """REFERENCES step 1: the message's own id and its parents' ids (its
    References, else the first id of In-Reply-To)."""
    mid = _MSGID.search(parsed.message_id or "")
    refs = tuple(r for r in parsed.references if _MSGID.fullmatch(r))
    if not refs:
        first = _MSGID.search(parsed.in_reply_to or "")
        refs = (first.group(0),) if first else ()
    return (mid.group(0) if mid else None), refs


class SortKeys(NamedTuple):
    """What the store keeps per message for SORT and THREAD. The strings are
    already casemapped, so the store compares them as plain (binary) text.
    DATE and SIZE come from the message's own sent_date and size.

    A named tuple, not a frozen dataclass: it travels from the ingest worker
    with every delivery, and unpickling a frozen dataclass runs Python code
    per field on the server's event loop (~3 us a message against ~1.3)."""

    subject: str                  # base subject
    from_addr: str                # addr-mailbox of the first From
    to_addr: str
    cc_addr: str
    from_display: str             # RFC 5957 display name of the first From
    to_display: str
    msgid: str | None             # REFERENCES: own Message-ID, None if unusable
    refs: str                     # REFERENCES: parent ids, space-separated
    reply: bool                   # the subject was a reply or forward

    @staticmethod
    def of(parsed: ParsedMessage) -> SortKeys:
        mid, refs = thread_ids(parsed)
        return SortKeys(
            subject=casemap(parsed.base_subject),
            from_addr=casemap(first_mailbox(parsed.from_)),
            to_addr=casemap(first_mailbox(parsed.to)),
            cc_addr=casemap(first_mailbox(parsed.cc)),
            from_display=casemap(display(parsed.from_)),
            to_display=casemap(display(parsed.to)),
            msgid=mid,
            # _MSGID matches hold no whitespace, so a space joins them safely.
            refs=" ".join(refs),
            reply=is_reply_or_forward(parsed.subject),
        )
