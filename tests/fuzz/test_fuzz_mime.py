"""Fuzzing the MIME parser with mutated and spliced corpus messages
(tests/data/messages); see fuzz_targets.py."""

from __future__ import annotations

from fuzz_targets import _CORPUS, check_mime, mime_input
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

parts = st.lists(st.integers(min_value=1, max_value=4), max_size=3).map(tuple)


@SETTINGS
@given(mime_input(), parts)
def test_mutated_corpus_messages_parse(raw: bytes, part: tuple[int, ...]) -> None:
    check_mime(raw, part)


def test_corpus_is_there() -> None:
    assert len(_CORPUS) >= 30
