"""Dates of RFC 9051 §9: date, date-time, INTERNALDATE output."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mailbag.wire.dates import format_internaldate, parse_date, parse_datetime


def test_format_internaldate() -> None:
    tz = timezone(-timedelta(hours=7))
    assert format_internaldate(datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz)) == \
        b'"17-Jul-1996 02:44:25 -0700"'
    assert format_internaldate(datetime(2024, 1, 5, 0, 0, 0)) == b'"05-Jan-2024 00:00:00 +0000"'
    tz = timezone(timedelta(hours=5, minutes=30))
    assert format_internaldate(datetime(2024, 12, 31, 23, 59, 59, tzinfo=tz)) == \
        b'"31-Dec-2024 23:59:59 +0530"'


def test_round_trip() -> None:
    when = datetime(2001, 3, 9, 8, 7, 6, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    assert parse_datetime(format_internaldate(when)[1:-1]) == when


@pytest.mark.parametrize(("text", "expected"), [
    (b"1-Feb-1994", date(1994, 2, 1)), (b"01-feb-1994", date(1994, 2, 1)),
    (b"29-FEB-2024", date(2024, 2, 29)),
])
def test_parse_date(text: bytes, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", [b"", b"1-Foo-1994", b"32-Jan-1994", b"29-Feb-2023",
                                  b"1-Jan-94", b"1 Jan 1994", b"001-Jan-1994"])
def test_parse_date_invalid(text: bytes) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


def test_parse_datetime_space_padded_day() -> None:
    assert parse_datetime(b" 7-Feb-1994 21:52:25 -0800").day == 7


@pytest.mark.parametrize("text", [b"7-Feb-1994 25:00:00 +0000", b"7-Feb-1994 21:52:25",
                                  b"7-Feb-1994 21:52:25 +2400", b"7-Feb-1994 21:52:25 -0860"])
def test_parse_datetime_invalid(text: bytes) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)
