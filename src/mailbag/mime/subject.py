"""RFC 5256 §2.1 base subject extraction, used by SORT SUBJECT and THREAD.

The input is the already RFC 2047-decoded subject. Case is kept; callers
compare base subjects with the i;ascii-casemap collation.
"""

from __future__ import annotations

import re

_WS = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:\s|\(fwd\))+$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP
_LEADER = re.compile(r"^(?:(?:" + _BLOB + r")*(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:|[ \t]+)",
                     re.IGNORECASE)
_LEADING_BLOB = re.compile(r"^" + _BLOB)


def base_subject(subject: str) -> str:
    """The base subject: no "Re:", "Fwd:", "[list]" leaders nor "(fwd)" trailers."""
    s = _WS.sub(" ", subject)
    while True:
        s = _TRAILER.sub("", s)                                  # step 2
        while True:                                              # steps 3-5
            before = s
            while True:
                m = _LEADER.match(s)
                if not m or not m.group(0):
                    break
                s = s[m.end():]
            m = _LEADING_BLOB.match(s)
            if m and s[m.end():]:
                s = s[m.end():]
            if s == before:
                break
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):   # step 6
            s = s[5:-1]
            continue
        return s.strip(" ")
