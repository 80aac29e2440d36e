import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbag.log import (
    SecretFieldError,
    configure_logging,
    format_event,
    format_value,
    log_event,
    unconfigure_logging,
)

FAIL2BAN_DOC = Path(__file__).parent.parent / "docs" / "fail2ban.md"
# What fail2ban substitutes for <HOST> (simplified: IPv4 or IPv6 literal).
HOST = r"(?P<host>[0-9A-Fa-f.:]+)"


def failregex() -> re.Pattern[str]:
    text = FAIL2BAN_DOC.read_text()
    (line,) = re.findall(r"^failregex = (.*)$", text, re.M)
    return re.compile(line.replace("<HOST>", HOST))


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", out)
    yield out
    unconfigure_logging()
    logging.getLogger().setLevel(logging.WARNING)


def test_format_value() -> None:
    assert format_value("alice") == "alice"
    assert format_value(42) == "42"
    assert format_value("") == '""'
    assert format_value("a b") == '"a b"'
    assert format_value('say "hi"') == '"say \\"hi\\""'
    assert format_value("x=y") == '"x=y"'
    assert format_value("line\nbreak\r\x00\x1b") == '"line\\nbreak\\r\\x00\\x1b"'
    assert format_value("jörg") == '"jörg"'


def test_fields_in_order_none_omitted() -> None:
    assert format_event("ev", a=1, b=None, c="x y") == 'ev a=1 c="x y"'


@pytest.mark.parametrize("name", ["password", "new_password", "Passwd", "secret", "api_token"])
def test_secret_field_names_are_refused(name: str) -> None:
    with pytest.raises(SecretFieldError):
        log_event(logging.getLogger("mailbag.test"), "ev", **{name: "x"})


def test_checks_are_remembered_only_for_names_that_passed() -> None:
    # format_event remembers names it has checked; a refused name stays
    # refused, and an event name never vouches for a field of that name.
    for _ in range(2):
        with pytest.raises(SecretFieldError):
            format_event("ev", api_token="x")
        with pytest.raises(ValueError):
            format_event("Bad Event")
    assert format_event("password-reset", user="a") == "password-reset user=a"
    with pytest.raises(SecretFieldError):
        format_event("ev", **{"password-reset": "x"})


def test_secret_refused_even_when_level_disabled() -> None:
    logger = logging.getLogger("mailbag.test.quiet")
    logger.setLevel(logging.ERROR)
    with pytest.raises(SecretFieldError):
        log_event(logger, "ev", level=logging.DEBUG, password="x")


def test_line_format(stream: io.StringIO) -> None:
    log_event(logging.getLogger("mailbag.auth"), "auth-failed", rip="127.0.0.1", user="alice")
    line = stream.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ mailbag\.auth auth-failed rip=127\.0\.0\.1 user=alice\n",
        line,
    )


def test_one_line_even_with_traceback(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("boom\nsecond")
    except RuntimeError:
        logging.getLogger("mailbag.x").exception("crash")
    assert stream.getvalue().count("\n") == 1


async def test_fail2ban_regex_matches_real_failure_lines(stream: io.StringIO) -> None:
    from mailbag.auth.authenticator import Authenticator
    from mailbag.auth.passwords import PasswordHasher
    from mailbag.config import Argon2Params

    class NoAccounts:
        async def get_account(self, name: str) -> None:
            return None

    hasher = PasswordHasher(Argon2Params(time_cost=1, memory_cost=64, parallelism=1))
    auth = Authenticator(NoAccounts(), hasher)  # type: ignore[arg-type]
    await auth.login("alice", b"pw", "192.0.2.7", mech="PLAIN")
    await auth.login('x rip=6.6.6.6 "', b"pw", "2001:db8::5")
    await auth.login("y\nmailbag.auth auth-failed rip=6.6.6.6 ", b"pw", "198.51.100.3")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    regex = failregex()
    hosts = []
    for line in lines:
        m = regex.search(line)
        assert m, line
        hosts.append(m.group("host"))
        # fail2ban may cut the timestamp off first; the filter must still match.
        m2 = regex.search(line.split(" ", 1)[1])
        assert m2 and m2.group("host") == hosts[-1]
    assert hosts == ["192.0.2.7", "2001:db8::5", "198.51.100.3"]


def test_fail2ban_regex_ignores_successes() -> None:
    line = "2026-11-26T19:40:00Z mailbag.auth auth-ok rip=192.0.2.7 user=alice proto=imap mech=PLAIN"
    assert not failregex().search(line)
