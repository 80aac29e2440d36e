"""Property tests (hypothesis): whatever bytes arrive, the parser only ever
returns events, always makes progress, and chunking never changes the result."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbag.wire.commands import Command, NeedContinuation, ProtocolError
from mailbag.wire.parser import CommandParser, Limits

from .test_commands_table import CASES
from .test_parser_errors import BAD

VALID = [line + b"\r\n" for line, _ in CASES]
SEEDS = VALID + [line + b"\r\n" for line, _, _ in BAD]
EVENT_TYPES = (Command, NeedContinuation, ProtocolError)


def run(data: bytes, cuts: list[int], limits: Limits) -> list[object]:
    p = CommandParser(limits)
    out: list[object] = []
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts} | {0, len(data)})
    calls = 0
    for a, b in zip(points, points[1:], strict=False):
        p.feed(data[a:b])
        while True:
            calls += 1
            # every event consumes at least one byte (or is the last one)
            assert calls <= 4 * len(data) + 4 * len(points) + 10, "no progress"
            ev = p.next_event()
            if ev is None:
                break
            assert isinstance(ev, EVENT_TYPES), ev
            out.append(ev)
    return out


SMALL = Limits(max_line=200, max_literal=50, max_nesting=4, max_command_size=300)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    run(data, cuts, SMALL)
    run(data, cuts, Limits())


def mutate(seed: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(seed)
    for kind, pos, val in ops:
        if not data:
            data.append(val)
            continue
        pos %= len(data) + 1
        if kind == 0:
            data.insert(pos, val)
        elif kind == 1 and pos < len(data):
            del data[pos]
        elif kind == 2 and pos < len(data):
            data[pos] = val
        elif kind == 3:
            data[pos:pos] = b"{5}\r\n" if val % 2 else b" (\"x\" ~{2+}\r\n)"
        else:
            data[pos:pos] = data[: val % 20]
    return bytes(data)


mutated = st.builds(
    mutate,
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 300), st.integers(0, 255)), max_size=6),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated, min_size=1, max_size=4), st.lists(st.integers(0, 1200), max_size=10))
def test_mutated_commands_never_raise(commands: list[bytes], cuts: list[int]) -> None:
    data = b"".join(commands)
    run(data, cuts, SMALL)
    run(data, cuts, Limits())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated, min_size=1, max_size=3), st.lists(st.integers(0, 1000), max_size=10))
def test_chunking_does_not_change_events(commands: list[bytes], cuts: list[int]) -> None:
    data = b"".join(commands)
    assert run(data, cuts, Limits()) == run(data, [], Limits())
    assert run(data, cuts, SMALL) == run(data, list(range(len(data))), SMALL)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=5))
def test_valid_pipelines_parse_to_commands(commands: list[bytes]) -> None:
    evs = [e for e in run(b"".join(commands), [], Limits()) if not isinstance(e, NeedContinuation)]
    assert len(evs) == len(commands)
    assert all(isinstance(e, Command) for e in evs)
