"""The POP3 command registry (DESIGN.md rule 6): each keyword maps to its
handler and the states it is valid in (RFC 1939 §3: AUTHORIZATION,
TRANSACTION; UPDATE is entered by QUIT and takes no commands).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbag.pop3.codec import Command

if TYPE_CHECKING:
    from mailbag.pop3.session import Pop3Session


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


AUTHORIZATION = frozenset({State.AUTHORIZATION})
TRANSACTION = frozenset({State.TRANSACTION})
BOTH = AUTHORIZATION | TRANSACTION


class Pop3Error(Exception):
    """Raised by handlers: the command is answered ``-ERR [code] text``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


Handler = Callable[["Pop3Session", Command], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Entry:
    handler: Handler
    states: frozenset[State]


COMMANDS: dict[str, Entry] = {}


def command(name: str, states: frozenset[State]) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = Entry(fn, states)
        return fn

    return register
