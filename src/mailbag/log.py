"""Logging: one line per event, ``key=value`` fields, UTC timestamps.

A line looks like::

    2026-11-26T19:40:00Z mailbag.auth auth-failed rip=127.0.0.1 user=alice proto=imap mech=PLAIN reason=bad-password

Values are quoted when they hold spaces, quotes, ``=`` or are empty, and
control characters are escaped, so a hostile user name can neither start a new
line nor forge a field (fail2ban reads these lines; see docs/fail2ban.md).
Field names that suggest a secret are refused outright: secrets never reach a
log line (DESIGN.md rule 8).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import IO

_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "passphrase")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_.-]*\Z")
_BARE_VALUE = re.compile(r"[\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]+\Z")  # printable, no space " = \


class SecretFieldError(ValueError):
    """log_event was given a field whose name looks like it holds a secret."""


def format_value(value: object) -> str:
    """Render one field value: bare when safe, otherwise double-quoted with
    backslash escapes (``\\"``, ``\\\\``, ``\\n``, ``\\xNN``)."""
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, bytes):
        # bytes are never written raw: the repr is unambiguous and single-line.
        text = repr(value)
    if _BARE_VALUE.match(text):
        return text
    out = []
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# Event and field names already checked: the server logs the same few
# dozen names over and over (a line per delivery), and checking each one
# every time was ~5 µs a line. Bounded, in case a caller makes names up.
_checked: set[str] = set()
_CHECKED_MAX = 4096


def _check_field_name(name: str) -> None:
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        raise SecretFieldError(f"refusing to log a field named {name!r}")
    if not _FIELD_NAME.match(name):
        raise ValueError(f"bad log field name {name!r}")


def format_event(event: str, **fields: object) -> str:
    """``event k=v k=v`` (no timestamp or logger name; the formatter adds them).

    Fields whose value is None are left out.
    """
    checked = _checked
    # "=" (never in a field name) keeps event names apart from field names,
    # which are also checked for secrets.
    key = "=" + event
    if key not in checked:
        if not _FIELD_NAME.match(event):
            raise ValueError(f"event names are lower-case words with dashes: {event!r}")
        if len(checked) < _CHECKED_MAX:
            checked.add(key)
    parts = [event]
    for name, value in fields.items():
        if name not in checked:
            _check_field_name(name)
            if len(checked) < _CHECKED_MAX:
                checked.add(name)
        if value is None:
            continue
        parts.append(f"{name}={format_value(value)}")
    return " ".join(parts)


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: object
) -> None:
    """Log one event as a single ``key=value`` line."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", format_event(event, **fields))
    else:
        # Still refuse secret field names, so a mistake shows in every test
        # run and not only at debug level.
        format_event(event, **fields)


class KeyValueFormatter(logging.Formatter):
    """``<UTC ISO-8601 time>Z <logger> <message>``; tracebacks are folded
    onto the same line so that one event stays one line."""

    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return line.replace("\r", "\\r").replace("\n", "\\n")


_installed: logging.Handler | None = None


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Send all log events at ``level`` and above to ``stream`` (default stderr).

    Calling it again replaces the handler it installed before, and only that
    one (test runners and embedding programs keep theirs).
    """
    global _installed
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    root.addHandler(handler)
    _installed = handler
    root.setLevel(level.upper() if isinstance(level, str) else level)


def unconfigure_logging() -> None:
    """Remove the handler configure_logging installed (tests, clean shutdown)."""
    global _installed
    if _installed is not None:
        logging.getLogger().removeHandler(_installed)
        _installed = None
