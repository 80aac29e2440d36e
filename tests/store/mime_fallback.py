"""A stand-in for mime.parse / mime.text / mime.facts, used by the store tests
only while those modules are missing or broken in the tree (they are written in
parallel). Never imported by src/."""

from __future__ import annotations

import pickle
import sys
import types
from email.utils import parsedate_to_datetime


def _minimal_parse(raw: bytes):  # type: ignore[no-untyped-def]
    from mailbag.mime.message import ParsedMessage, Part

    head, _, body = raw.partition(b"\r\n\r\n")
    fields: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    try:
        sent = parsedate_to_datetime(fields["date"])
    except Exception:
        sent = None
    start = len(head) + 4 if body or raw.endswith(b"\r\n\r\n") else len(raw)
    part = Part(0, start, len(raw), "text", "plain", (), "7bit", body.count(b"\n"))
    subject = fields.get("subject", "")
    return ParsedMessage(
        part, b"NIL", b"NIL", b"NIL", sent, subject, subject, (), (), (), (), None, None, (), ""
    )


def install() -> bool:
    """Install stubs for whichever of the three modules cannot be imported;
    returns True if any stub was installed."""
    installed = False
    try:
        import mailbag.mime.facts  # noqa: F401
    except Exception:
        facts = types.ModuleType("mailbag.mime.facts")
        facts.dump = pickle.dumps  # type: ignore[attr-defined]
        facts.load = pickle.loads  # type: ignore[attr-defined]
        sys.modules["mailbag.mime.facts"] = facts
        installed = True
    try:
        from mailbag.mime.parse import parse_message  # noqa: F401
    except Exception:
        parse = types.ModuleType("mailbag.mime.parse")
        parse.parse_message = _minimal_parse  # type: ignore[attr-defined]
        sys.modules["mailbag.mime.parse"] = parse
        installed = True
    try:
        from mailbag.mime.text import search_text  # noqa: F401
    except Exception:
        from mailbag.mime.message import SearchText

        text = types.ModuleType("mailbag.mime.text")

        def search_text(raw: bytes, msg: object) -> SearchText:
            head, _, body = raw.partition(b"\r\n\r\n")
            return SearchText(head.decode("utf-8", "replace"), body.decode("utf-8", "replace"))

        text.search_text = search_text  # type: ignore[attr-defined]
        sys.modules["mailbag.mime.text"] = text
        installed = True
    return installed
