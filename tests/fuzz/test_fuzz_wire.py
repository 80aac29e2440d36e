"""Fuzzing the sans-IO IMAP parser (wire/parser.py); see fuzz_targets.py.
tools/fuzz.py runs these same tests for minutes on end."""

from __future__ import annotations

from fuzz_targets import MODE_SWITCHES, PRE_AUTH, SMALL, check_wire, wire_input
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbag.wire.parser import Limits

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(wire_input(), st.lists(st.integers(0, 1 << 16), max_size=10),
       st.lists(st.sampled_from(MODE_SWITCHES), max_size=6),
       st.sampled_from([SMALL, PRE_AUTH, Limits()]))
def test_parser_survives_anything(data: bytes, cuts: list[int], switches: list[str],
                                  limits: Limits) -> None:
    check_wire(data, cuts, switches, limits)


def test_an_endless_line_is_not_buffered() -> None:
    # The bounded-memory property the fuzz target asserts, on a worst case.
    check_wire(b"a" * 100_000, list(range(0, 100_000, 1000)), [], SMALL)
