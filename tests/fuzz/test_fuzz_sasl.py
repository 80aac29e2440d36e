"""Fuzzing every SASL mechanism create_mechanism makes (auth/sasl.py) and the
client-response decoder; see fuzz_targets.py."""

from __future__ import annotations

from fuzz_targets import MECHANISMS, check_decode, check_sasl, sasl_messages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(st.sampled_from(MECHANISMS), st.one_of(st.none(), st.binary(max_size=80)),
       sasl_messages(), st.booleans(), st.booleans())
def test_mechanisms_only_fail_as_documented(name: str, initial: bytes | None,
                                            messages: list[bytes], known: bool,
                                            reject: bool) -> None:
    check_sasl(name, initial, messages, known, reject)


@SETTINGS
@given(sasl_messages(), st.booleans(), st.booleans())
def test_scram_with_structured_messages(messages: list[bytes], known: bool, plus: bool) -> None:
    # Start from a well-formed client-first so the fuzzer reaches client-final.
    first = b"p=tls-exporter,,n=alice,r=abc" if plus else b"n,,n=alice,r=abc"
    name = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
    check_sasl(name, first, messages, known, False)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.sampled_from([b"*", b"=", b"", b"===", b"QQ=="])))
def test_response_decoder(line: bytes) -> None:
    check_decode(line)


def test_every_mechanism_is_covered() -> None:
    assert set(MECHANISMS) == {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "OAUTHBEARER",
                               "XOAUTH2", "PLAIN", "LOGIN"}
