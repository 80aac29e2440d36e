"""The command registry (DESIGN.md rule 6): each command type maps to its
handler, the session states it is valid in (RFC 9051 §3, §6), and whether
EXPUNGE responses may follow it (RFC 9051 §7.5.1: never during FETCH, STORE
or SEARCH by sequence number).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from mailbag.wire.commands import Command

if TYPE_CHECKING:
    from mailbag.imap.session import Session


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True, slots=True)
class Reply:
    """The tagged completion of a command."""

    status: str = "OK"               # OK / NO / BAD
    text: str = "done"
    code: str | None = None          # e.g. "TRYCREATE", "APPENDUID 3 7"
    answered: bool = False           # the handler already sent the tagged line


class CommandError(Exception):
    """Raised by handlers to answer NO/BAD with a response code."""

    def __init__(self, text: str, code: str | None = None, status: str = "NO") -> None:
        super().__init__(text)
        self.reply = Reply(status, text, code)


def bad(text: str, code: str | None = None) -> CommandError:
    return CommandError(text, code, "BAD")


Handler = Callable[["Session", Any], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Entry:
    handler: Handler
    states: frozenset[State]
    # Sequence-number FETCH/STORE/SEARCH must not be followed by EXPUNGE.
    forbids_expunge: Callable[[Any], bool]


REGISTRY: dict[type[Command], Entry] = {}

C = TypeVar("C", bound=Command)


def command(
    kind: type[C],
    states: frozenset[State],
    forbids_expunge: Callable[[Any], bool] = lambda cmd: False,
) -> Callable[[Callable[[Session, C], Awaitable[Reply]]], Callable[[Session, C], Awaitable[Reply]]]:
    def register(fn: Callable[[Session, C], Awaitable[Reply]]) -> Callable[[Session, C], Awaitable[Reply]]:
        REGISTRY[kind] = Entry(fn, states, forbids_expunge)
        return fn

    return register
