"""Flag spellings of the foreign formats and their IMAP meaning.

* Maildir info (https://cr.yp.to/proto/maildir.html): ``:2,`` then letters in
  ASCII order: D draft, F flagged, P passed (``$Forwarded``, as isync and
  Dovecot's maildir do), R replied (``\\Answered``), S seen, T trashed
  (``\\Deleted``); Dovecot's lowercase letters a-z are keywords, numbered by
  the folder's ``dovecot-keywords`` file ("0 name" lines).
* mbox (the c-client/Dovecot convention): ``Status: RO`` (R seen, O old),
  ``X-Status: AFTD`` (answered, flagged, draft, deleted) and
  ``X-Keywords: a b c`` (space separated, commas accepted on input).

Keywords must be IMAP atoms (RFC 9051 §2.3.2, §9 flag-keyword); others are
dropped and named in the import summary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailbag.store import flags as flaglib

FORWARDED = "$Forwarded"

MAILDIR_LETTERS: dict[str, str] = {
    "D": flaglib.DRAFT,
    "F": flaglib.FLAGGED,
    "P": FORWARDED,
    "R": flaglib.ANSWERED,
    "S": flaglib.SEEN,
    "T": flaglib.DELETED,
}
_MAILDIR_BY_FLAG = {v.casefold(): k for k, v in MAILDIR_LETTERS.items()}

X_STATUS_LETTERS: dict[str, str] = {
    "A": flaglib.ANSWERED,
    "F": flaglib.FLAGGED,
    "T": flaglib.DRAFT,
    "D": flaglib.DELETED,
}
_X_STATUS_BY_FLAG = {v.casefold(): k for k, v in X_STATUS_LETTERS.items()}

# atom-specials (RFC 9051 §9: "(" ")" "{" SP CTL "%" "*" DQUOTE "\\" "]")
# may not appear in a keyword.
_ATOM_SPECIALS = frozenset('(){%*"\\]')
_SYSTEM = {f.casefold() for f in flaglib.SYSTEM_FLAGS}


def valid_keyword(word: str) -> bool:
    return bool(word) and all(
        0x21 <= ord(ch) <= 0x7E and ch not in _ATOM_SPECIALS for ch in word
    )


def clean_flags(flags: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """Keep system flags and valid keywords; return the rest as notes."""
    kept: list[str] = []
    dropped: list[str] = []
    for flag in flags:
        key = flag.casefold()
        if key == flaglib.RECENT.casefold():
            continue  # per session, never data (RFC 9051 §2.3.2)
        if flag.startswith("\\"):
            (kept if key in _SYSTEM else dropped).append(flag)
        elif valid_keyword(flag):
            kept.append(flag)
        else:
            dropped.append(flag)
    return flaglib.canonical(kept), [f"dropped flag {f!r}" for f in dropped]


# -- Maildir

def maildir_flags(info: str, keywords: dict[str, str]) -> tuple[set[str], list[str]]:
    """Flags of a ``:2,`` info string; ``keywords`` maps a-z to names."""
    flags: set[str] = set()
    notes: list[str] = []
    for letter in info:
        if letter in MAILDIR_LETTERS:
            flags.add(MAILDIR_LETTERS[letter])
        elif "a" <= letter <= "z":
            name = keywords.get(letter)
            if name is None:
                notes.append(f"keyword letter {letter!r} not in dovecot-keywords")
            else:
                flags.add(name)
        else:
            notes.append(f"unknown Maildir flag letter {letter!r}")
    return flags, notes


def maildir_info(flags: Iterable[str], letter_of: dict[str, str]) -> str:
    """The info letters (ASCII order) for ``flags``; ``letter_of`` maps
    casefolded keywords to their a-z letter."""
    letters = set()
    for flag in flags:
        key = flag.casefold()
        if key in _MAILDIR_BY_FLAG:
            letters.add(_MAILDIR_BY_FLAG[key])
        if key in letter_of:
            letters.add(letter_of[key])
    return "".join(sorted(letters))


# -- mbox

def mbox_flags(status: list[bytes], x_status: list[bytes], x_keywords: list[bytes]) -> set[str]:
    flags: set[str] = set()
    for value in status:
        if b"R" in value:
            flags.add(flaglib.SEEN)
    for value in x_status:
        for letter, flag in X_STATUS_LETTERS.items():
            if letter.encode() in value:
                flags.add(flag)
    for value in x_keywords:
        for word in re.split(r"[\s,]+", value.decode("utf-8", "replace")):
            if word:
                flags.add(word)
    return flags


def mbox_status_lines(flags: Iterable[str]) -> list[bytes]:
    """Status, X-Status and X-Keywords lines for ``flags`` (Status always,
    as Dovecot writes it; the others only when they say something)."""
    keys = {f.casefold() for f in flags}
    lines = [b"Status: " + (b"RO" if flaglib.SEEN.casefold() in keys else b"O")]
    x_status = "".join(letter for letter, flag in X_STATUS_LETTERS.items()
                       if flag.casefold() in keys)
    if x_status:
        lines.append(b"X-Status: " + x_status.encode())
    words = sorted((f for f in flags if not f.startswith("\\")), key=str.casefold)
    if words:
        lines.append(b"X-Keywords: " + " ".join(words).encode())
    return lines


def keywords_of(flags: Iterable[str]) -> list[str]:
    """Keywords for ``dovecot-keywords``. $Forwarded is among them although it
    also gets P: isync reads P, Dovecot 2.3 ignores P and reads only letters."""
    return [f for f in flags if not f.startswith("\\")]
