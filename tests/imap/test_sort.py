"""SORT ordering (mailbag.imap.sort): RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO,
checked against Dovecot imaptest's sort-* scripts with a real SqliteStore."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mailbag.imap.search import SearchContext
from mailbag.imap.sort import casemap, sort

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def test_casemap_folds_ascii_only() -> None:
    assert casemap("abc_Zä") == "ABC_Zä"
    assert casemap("b@c.d") < casemap("D") < casemap("foo aar")


def parse_mbox(text: str) -> list[tuple[bytes, datetime]]:
    """Messages and INTERNALDATEs as imapscript.py appends them: CRLF lines,
    the From line's time (in its zone, else UTC here) as internal date."""
    out: list[tuple[list[bytes], datetime]] = []
    for line in text.encode().split(b"\n")[:-1]:
        m = re.match(rb"From user@domain  \w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d{4})(?: ([+-])(\d\d)(\d\d))?$", line)
        if m:
            mon = MONTHS.index(m[1].decode().lower()) + 1
            offset = timedelta(0)
            if m[7]:
                offset = timedelta(hours=int(m[8]), minutes=int(m[9])) * (-1 if m[7] == b"-" else 1)
            when = datetime(int(m[6]), mon, int(m[2]), int(m[3]), int(m[4]), int(m[5]),
                            tzinfo=timezone(offset))
            out.append(([], when))
        else:
            out[-1][0].append(line)
    return [(b"".join(x + b"\r\n" for x in lines), when) for lines, when in out]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Any:
    sqlite = pytest.importorskip("mailbag.store.sqlite")
    if not hasattr(sqlite, "SqliteStore"):
        pytest.skip("store.sqlite.SqliteStore not there yet")
    store = sqlite.SqliteStore(tmp_path / "data")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Box:
    def __init__(self, store: Any, mailbox_id: int, uids: list[int]):
        self.store, self.mailbox_id, self.uids = store, mailbox_id, uids

    async def sort(self, criteria: str, seqs: Sequence[int] | None = None) -> list[int]:
        """'(reverse date size)' style criteria; answers in sequence numbers."""
        words = criteria.upper().split()
        pairs: list[tuple[str, bool]] = []
        reverse = False
        for w in words:
            if w == "REVERSE":
                reverse = True
                continue
            pairs.append((w, reverse))
            reverse = False
        ctx = SearchContext(self.mailbox_id, self.uids, {u: frozenset() for u in self.uids},
                            frozenset(), None, datetime.now(UTC))
        chosen = self.uids if seqs is None else [self.uids[s - 1] for s in seqs]
        result = await sort(self.store, ctx, pairs, chosen)
        return [self.uids.index(u) + 1 for u in result]


@pytest.fixture
async def make_box(sqlite_store: Any) -> Any:
    from mailbag.store.api import AppendItem

    counter = iter(range(1, 1000))

    async def make(mbox_text: str) -> Box:
        account = await sqlite_store.create_account(f"sorter{next(counter)}", "x")
        box = await sqlite_store.create_mailbox(account.id, f"Sort{next(counter)}")
        items = [AppendItem(data, internaldate=when) for data, when in parse_mbox(mbox_text)]
        result = await sqlite_store.append(box.id, items)
        return Box(sqlite_store, box.id, list(result.uids))

    return make


SORT_ADDRESSES = """\
From user@domain  Fri Feb 22 00:06:23 2008
From: user2@domain2.org
To: foo bar <user2@domain2.org>
Cc: user2@domain2.org (foo bar)

1

From user@domain  Fri Feb 22 01:06:23 2008
From: user2@domain1.org
To: user2@domain1.org
Cc: user2: blah@domain1.org;

2

From user@domain  Fri Feb 22 02:06:23 2008
From: user1@domain1.org
To: user1@domain1.org
Cc: user1@domain1.org

3

"""


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("from", [3, 1, 2]),
        ("to", [3, 1, 2]),
        ("cc", [3, 1, 2]),
        ("reverse from", [1, 2, 3]),
        ("reverse to", [1, 2, 3]),
        ("reverse cc", [1, 2, 3]),
        ("from reverse arrival", [3, 2, 1]),
        ("to reverse arrival", [3, 2, 1]),
        ("cc reverse arrival", [3, 2, 1]),
    ],
)
async def test_sort_addresses(make_box: Any, criteria: str, expected: list[int]) -> None:
    box = await make_box(SORT_ADDRESSES)
    assert await box.sort(criteria) == expected


SORT_ARRIVAL = """\
From user@domain  Fri Feb 22 00:00:00 2008

1

From user@domain  Fri Feb 22 02:00:00 2008

2

From user@domain  Fri Feb 22 01:00:00 2008

33

From user@domain  Fri Feb 22 02:00:00 2008

44

From user@domain  Fri Feb 22 02:00:00 2008

5555

"""


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("arrival", [1, 3, 2, 4, 5]),
        ("reverse arrival", [2, 4, 5, 3, 1]),      # ties keep sequence order
        ("arrival reverse size", [1, 3, 5, 4, 2]),
    ],
)
async def test_sort_arrival(make_box: Any, criteria: str, expected: list[int]) -> None:
    box = await make_box(SORT_ARRIVAL)
    assert await box.sort(criteria) == expected


SORT_DATE = """\
From user@domain  Fri Feb 22 23:00:00 2008 +0200
Date: Fri, 22 Feb 2008 00:00:00 +0200

1

From user@domain  Fri Feb 22 22:00:00 2008 +0200
Date: Fri, 22 Feb 2008 02:00:00 +0200

2

From user@domain  Fri Feb 22 21:00:00 2008 +0200
Date: Fri, 22 Feb 2008 01:00:00 +0200

33

From user@domain  Fri Feb 22 20:00:00 2008 +0200
Date: Fri, 22 Feb 2008 02:00:00 +0200

44

From user@domain  Fri Feb 22 01:30:23 2008 +0200
Subject: foo

55555

From user@domain  Fri Feb 22 18:00:00 2008 +0200
Date: Fri, 22 Feb 2008 02:00:00 +0200

6666

From user@domain  Fri Feb 22 01:00:00 2008 +0200
Subject: foo bar foo bar foo bar fooo

777

"""


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("date", [1, 3, 7, 5, 2, 4, 6]),            # no Date: uses the internal date
        ("reverse date", [2, 4, 6, 5, 3, 7, 1]),
        ("date reverse size", [1, 7, 3, 5, 6, 4, 2]),
    ],
)
async def test_sort_date(make_box: Any, criteria: str, expected: list[int]) -> None:
    box = await make_box(SORT_DATE)
    assert await box.sort(criteria) == expected


SORT_DISPLAY_FROM = """\
From user@domain  Fri Feb 22 23:00:00 2008 +0200
From: foo bar <a@b.c>

1

From user@domain  Fri Feb 22 23:00:00 2008 +0200
From: b@c.d

2

From user@domain  Fri Feb 22 23:00:00 2008 +0200
From: d

3

From user@domain  Fri Feb 22 23:00:00 2008 +0200
From: =?iso-8859-1?q?foo_aar?= <e@f.g>

4

From user@domain  Fri Feb 22 23:00:00 2008 +0200
From: =?iso-8859-1?q?foo_car?= <f@g.h>

5
"""


async def test_sort_display_from(make_box: Any) -> None:
    box = await make_box(SORT_DISPLAY_FROM)
    assert await box.sort("displayfrom") == [2, 3, 4, 1, 5]
    assert await box.sort("reverse displayfrom") == [5, 1, 4, 3, 2]
    assert await box.sort("displayto") == [1, 2, 3, 4, 5]     # no To: all equal


SORT_SIZE = "".join(
    f"From user@domain  Fri Feb 22 0{i}:06:23 2008\nDate: Sat, 24 Mar 2007 23:00:00 +0200\n\n{body}\n\n"
    for i, body in enumerate(["1", "22", "333", "4\n4", "555", "66", "7777", "8"])
)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("size", [1, 8, 2, 6, 3, 5, 4, 7]),
        ("reverse size", [4, 7, 3, 5, 2, 6, 1, 8]),
        ("size reverse arrival", [8, 1, 6, 2, 5, 3, 7, 4]),
    ],
)
async def test_sort_size(make_box: Any, criteria: str, expected: list[int]) -> None:
    box = await make_box(SORT_SIZE)
    assert await box.sort(criteria) == expected


SORT_SUBJECT = """\
From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: a

1

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: C

2

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: b

3

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: _

4

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: [foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)

55

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: b (a)

66

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: Re: [FWD: c]

77

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: [xyz]

88

From user@domain  Fri Feb 22 23:00:00 2008 +0200

9

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: =?iso-8859-1?q?_?=

10

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: Re: =?utf-8?q?b?=

11
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: =?iso-8859-1?q?RE:_C?=

12
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: =?us-ascii?b?UmU6IGM=?=

13

The subject is 'Re: c'.
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: Ad: Re: Ad: Re: Ad: x

14

From user@domain  Fri Feb 22 23:00:00 2008 +0200
Subject: re: [fwd: [fwd: re: [fwd: babylon]]]

15
"""


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("subject", [9, 10, 1, 14, 3, 5, 11, 6, 15, 2, 7, 12, 13, 8, 4]),
        ("reverse subject", [4, 8, 2, 7, 12, 13, 15, 6, 3, 5, 11, 14, 1, 9, 10]),
        ("subject reverse size", [10, 9, 1, 14, 11, 5, 3, 6, 15, 13, 12, 7, 2, 8, 4]),
    ],
)
async def test_sort_subject(make_box: Any, criteria: str, expected: list[int]) -> None:
    box = await make_box(SORT_SUBJECT)
    assert await box.sort(criteria) == expected


async def test_sort_a_subset_and_no_criteria(make_box: Any) -> None:
    box = await make_box(SORT_SIZE)
    assert await box.sort("reverse size", seqs=[1, 2, 3]) == [3, 2, 1]
    assert await box.sort("", seqs=[3, 1, 2]) == [1, 2, 3]   # sequence order
    assert await box.sort("size", seqs=[]) == []


# RFC 5256 §2.2: "If the sent date cannot be determined (a Date: header is
# missing or cannot be parsed), the INTERNALDATE for that message is used as
# the sent date." Message 1's Date glues its zone to the time of day; RFC
# 5322 §3.3 has "time = time-of-day FWS zone", so it is no date-time and
# message 1 sorts by its INTERNALDATE (Feb 22 12:00 UTC), as in Dovecot. Read
# leniently it would be Jan 1 2001 00:01 and tie with message 3 (the same date
# written correctly), ahead of it by sequence number.
SORT_GLUED_ZONE = """\
From user@domain  Fri Feb 22 12:00:00 2008 +0000
Subject: x
Date: 01 Jan 2001 00:01+0000

1

From user@domain  Tue Jan 01 00:00:00 2008 +0000
Subject: x
Date: Fri, 22 Feb 2008 11:00:00 +0000

2

From user@domain  Sat Mar 01 00:00:00 2008 +0000
Subject: x
Date: 01 Jan 2001 00:01 +0000

3

From user@domain  Fri Feb 22 13:00:00 2008 +0000
Subject: x

4

"""


async def test_date_with_a_glued_zone_is_no_sent_date(make_box: Any) -> None:
    from mailbag.imap import thread as threading
    from mailbag.imap.sort import sort_from_records

    box = await make_box(SORT_GLUED_ZONE)
    assert await box.sort("date") == [3, 2, 1, 4]
    assert await box.sort("reverse date") == [4, 1, 2, 3]
    ctx = SearchContext(box.mailbox_id, box.uids, {u: frozenset() for u in box.uids},
                        frozenset(), None, datetime.now(UTC))
    straight = await sort_from_records(box.store, ctx, [("DATE", False)], box.uids)
    assert [box.uids.index(u) + 1 for u in straight] == [3, 2, 1, 4]
    # THREAD (RFC 5256 §3) orders by the same sent date. ORDEREDSUBJECT: "the
    # first message in each thread is the parent of the others"; REFERENCES
    # step 5 gathers the same-subject non-replies under a dummy, children by date.
    loaded = await threading.load(box.store, box.mailbox_id, box.uids)
    assert loaded == await threading.load_from_records(box.store, box.mailbox_id, box.uids)

    def seq(uid: int) -> int:
        return box.uids.index(uid) + 1

    assert threading.render(threading.ordered_subject(loaded), seq) == b"(3 (2)(1)(4))"
    assert threading.render(threading.references(loaded), seq) == b"((3)(2)(1)(4))"
