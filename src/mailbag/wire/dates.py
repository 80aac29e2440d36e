"""IMAP dates: "date" (search keys) and "date-time" (APPEND, INTERNALDATE)
of RFC 9051 §9 (date-day, date-day-fixed, date-month, date-year, time, zone).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.upper().encode(): i + 1 for i, m in enumerate(MONTHS)}

_DATE = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")
# date-day-fixed is (SP DIGIT) / 2DIGIT; a bare single digit is accepted too
# because several clients send it.
_DATE_TIME = re.compile(
    rb"( ?\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\Z"
)


def parse_date(text: bytes) -> date:
    """'d-Mon-yyyy' -> date; ValueError when malformed."""
    m = _DATE.match(text)
    if m is None:
        raise ValueError("expected a date like 1-Feb-1994")
    month = _MONTH_NUMBER.get(m.group(2).upper())
    if month is None:
        raise ValueError("unknown month name")
    return date(int(m.group(3)), month, int(m.group(1)))


def parse_datetime(text: bytes) -> datetime:
    """'dd-Mon-yyyy hh:mm:ss +zzzz' (without the quotes) -> aware datetime."""
    m = _DATE_TIME.match(text)
    if m is None:
        raise ValueError("expected a date-time like 17-Jul-1996 02:44:25 -0700")
    month = _MONTH_NUMBER.get(m.group(2).upper())
    if month is None:
        raise ValueError("unknown month name")
    zh, zm = int(m.group(8)), int(m.group(9))
    if zh > 23 or zm > 59:
        raise ValueError("time zone out of range")
    offset = timedelta(hours=zh, minutes=zm)
    if m.group(7) == b"-":
        offset = -offset
    return datetime(int(m.group(3)), month, int(m.group(1).strip()),
                    int(m.group(4)), int(m.group(5)), int(m.group(6)),
                    tzinfo=timezone(offset))


def format_internaldate(when: datetime) -> bytes:
    """A quoted date-time: b'"17-Jul-1996 02:44:25 -0700"'. A naive datetime is
    taken to be UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    off = when.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = (f'"{when.day:02d}-{MONTHS[when.month - 1]}-{when.year:04d} '
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
            f'{sign}{minutes // 60:02d}{minutes % 60:02d}"')
    return text.encode("ascii")
