"""Sans-IO IMAP command parser: framing of command lines and literals
(RFC 9051 §2.2, §4.3 "literal", §7.5 command continuation request; RFC 7888
LITERAL+/LITERAL- non-synchronizing literals; RFC 3516 literal8), the SASL
response line of AUTHENTICATE (RFC 9051 §6.2.2) and the DONE that ends IDLE
(RFC 2177 §3). The command grammar itself is in wire/grammar.py.

Feed bytes with :meth:`CommandParser.feed` and pull events with
:meth:`CommandParser.next_event` until it returns None. Limits are enforced
before anything is buffered: an over-long line is skipped, not stored, and an
over-size non-synchronizing literal is counted off without being kept.
"""

from __future__ import annotations

import enum

from mailbag.wire.commands import (
    AuthLine,
    Command,
    IdleDone,
    NeedContinuation,
    ParserEvent,
    ProtocolError,
)
from mailbag.wire.grammar import parse_command, split_tag
from mailbag.wire.lexer import Incomplete, ParseError, find_literal_marker
from mailbag.wire.limits import Limits

__all__ = ["CommandParser", "Limits"]

_NEED_MORE = object()
_EVENT_TYPES = (Command, NeedContinuation, AuthLine, IdleDone, ProtocolError)

# Enough of a skipped line's end to recognize a literal marker ("~{n+}").
_TAIL = 64


class _State(enum.Enum):
    LINE = "line"                  # reading a line of command text
    LITERAL = "literal"            # reading the bytes of an accepted literal
    SKIP_LINE = "skip-line"        # dropping an over-long line up to its LF
    SKIP_LITERAL = "skip-literal"  # counting off a literal nobody will read


class _Mode(enum.Enum):
    COMMAND = "command"
    AUTH = "auth"
    IDLE = "idle"


class CommandParser:
    """Turns the bytes a client sends into :data:`ParserEvent` objects."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits if limits is not None else Limits()
        self._buf = bytearray()
        self._scan = 0               # bytes of _buf already searched for LF
        self._mode = _Mode.COMMAND
        self._state = _State.LINE
        self._reset_command()
        self._remaining = 0          # literal bytes still to read or skip
        self._literal = bytearray()
        self._tail = b""             # end of the line being skipped
        self._pending: ProtocolError | None = None

    # ---------------------------------------------------------- session API
    def feed(self, data: bytes) -> None:
        self._buf += data

    def expect_auth_line(self) -> None:
        """The next line is a SASL response, returned as AuthLine."""
        self._mode = _Mode.AUTH

    def expect_idle_done(self) -> None:
        """The next line must be DONE (IdleDone), anything else is an error."""
        self._mode = _Mode.IDLE

    def discard_buffer(self) -> None:
        """Forget unread input (after STARTTLS: RFC 9051 §11.1 / RFC 3207 §6
        buffering attack) and any partly received command."""
        self._buf.clear()
        self._scan = 0
        self._state = _State.LINE
        self._reset_command()

    def take_buffer(self) -> bytes:
        """Hand back the unread input and forget it: after COMPRESS (RFC 4978
        §3) what the client sent next is compressed and must be inflated
        before it is parsed."""
        data = bytes(self._buf)
        self.discard_buffer()
        return data

    def cancel_literal(self) -> None:
        """The session refused a synchronizing literal after NeedContinuation
        (it sent a tagged NO/BAD instead of '+'): the client will not send the
        data, so drop the command."""
        if self._state is _State.LITERAL:
            self._state = _State.LINE
            self._reset_command()

    @property
    def between_commands(self) -> bool:
        """No command is partly received (no line waiting for its literal, no
        literal being read or skipped): unsolicited responses (NOTIFY, RFC
        5465) can go out without landing in the middle of one."""
        return (self._state is _State.LINE and not self._segments
                and not self._discarding and self._mode is _Mode.COMMAND)

    @property
    def buffered(self) -> int:
        """Bytes received but not consumed yet."""
        return len(self._buf)

    def next_event(self) -> ParserEvent | None:
        """The next event, or None when more input is needed."""
        while True:
            state = self._state
            if state is _State.LINE:
                event = self._line_event()
                if event is _NEED_MORE:
                    return None
            elif not self._buf:
                return None
            elif state is _State.LITERAL:
                self._read_literal()
                continue
            elif state is _State.SKIP_LITERAL:
                event = self._skip_literal()
            else:
                event = self._skip_line()
            if isinstance(event, _EVENT_TYPES):
                return event

    # ------------------------------------------------------------ framing
    def _reset_command(self) -> None:
        self._segments: list[bytes] = []
        self._literals: list[bytes] = []
        self._text_size = 0          # command text so far (limit: max_line)
        self._size = 0               # text plus literals (max_command_size)
        self._discarding = False     # drop the rest of this command silently

    def _line_event(self) -> ParserEvent | object | None:
        """Handle the next complete line; _NEED_MORE when it has not arrived.
        A line that outgrows max_line is dropped (never buffered whole)."""
        buf = self._buf
        i = buf.find(b"\n", self._scan)
        budget = self.limits.max_line - self._text_size
        if i < 0:
            self._scan = len(buf)
            if len(buf) <= budget + 1:  # +1: the CR of a CRLF may be pending
                return _NEED_MORE
            first = self._segments[0] if self._segments else bytes(buf[:256])
            self._tail = bytes(buf[-_TAIL:])
            buf.clear()
            self._scan = 0
            self._state = _State.SKIP_LINE
            return self._overlong_error(first)
        self._scan = 0
        end = i - 1 if i > 0 and buf[i - 1] == 0x0D else i
        if end > budget:
            first = self._segments[0] if self._segments else bytes(buf[:256])
            tail = bytes(buf[max(0, end - _TAIL):end])
            del buf[:i + 1]
            error = self._overlong_error(first)
            follow = self._after_discarded_line(tail)
            return follow if follow is not None else error
        line = bytes(buf[:end])
        del buf[:i + 1]
        return self._on_line(line)

    def _error_tag(self, first: bytes) -> str | None:
        if self._mode is not _Mode.COMMAND:
            return None
        return split_tag(first)[0]

    def _overlong_error(self, first: bytes) -> ProtocolError | None:
        tag = self._error_tag(first)
        already = self._discarding
        self._reset_command()
        self._discarding = True
        self._mode = _Mode.COMMAND
        if already:
            return None
        return ProtocolError(tag, "Command line too long", code="TOOBIG")

    def _skip_line(self) -> ProtocolError | None:
        buf = self._buf
        i = buf.find(b"\n")
        if i < 0:
            self._tail = (self._tail + bytes(buf[-_TAIL:]))[-_TAIL:]
            buf.clear()
            return None
        self._tail = (self._tail + bytes(buf[max(0, i - _TAIL):i]))[-_TAIL:]
        del buf[:i + 1]
        self._scan = 0
        self._state = _State.LINE
        return self._after_discarded_line(self._tail.rstrip(b"\r"))

    def _after_discarded_line(self, line: bytes) -> ProtocolError | None:
        """A line of a command being dropped ended: follow its literals."""
        marker = find_literal_marker(line)
        if marker is not None and not marker[1]:
            size = marker[0]
            if size > self.limits.max_command_size:
                return self._fatal(None, size)
            self._remaining = size
            self._state = _State.SKIP_LITERAL
            return None
        # no literal, or a synchronizing one that the client will not send
        self._reset_command()
        return None

    def _skip_literal(self) -> ProtocolError | None:
        take = min(self._remaining, len(self._buf))
        del self._buf[:take]
        self._remaining -= take
        if self._remaining:
            return None
        self._state = _State.LINE
        event, self._pending = self._pending, None
        return event

    def _read_literal(self) -> None:
        take = min(self._remaining, len(self._buf))
        self._literal += self._buf[:take]
        del self._buf[:take]
        self._remaining -= take
        if not self._remaining:
            self._literals.append(bytes(self._literal))
            self._literal = bytearray()
            self._state = _State.LINE

    def _fatal(self, tag: str | None, size: int) -> ProtocolError:
        self._buf.clear()
        self._scan = 0
        self._reset_command()
        self._discarding = True
        self._state = _State.LINE
        return ProtocolError(tag, f"Literal of {size} octets is beyond any limit",
                             code="TOOBIG", fatal=True)

    def _on_line(self, line: bytes) -> ParserEvent | None:
        if self._discarding:
            return self._after_discarded_line(line)
        mode = self._mode
        if mode is _Mode.AUTH:
            self._mode = _Mode.COMMAND
            return AuthLine(line)
        if mode is _Mode.IDLE:
            self._mode = _Mode.COMMAND
            if line.upper() == b"DONE":
                return IdleDone()
            return ProtocolError(None, "Expected DONE to end IDLE")
        return self._on_command_line(line)

    def _on_command_line(self, line: bytes) -> ParserEvent | None:
        limits = self.limits
        if not self._segments and not line.strip():
            return ProtocolError(None, "Empty command line")
        self._segments.append(line)
        self._text_size += len(line) + 2
        self._size += len(line) + 2
        tag = split_tag(self._segments[0])[0]
        marker = find_literal_marker(line)
        if marker is None:
            return self._finish(tag)
        size, sync, _binary = marker
        too_big = size > limits.max_literal or self._size + size > limits.max_command_size
        if sync:
            if too_big:
                self._reset_command()
                return ProtocolError(tag, f"Literal of {size} octets is too big",
                                     code="TOOBIG", status="NO")
            early = self._check_prefix(tag)
            if early is not None:
                self._reset_command()
                return early
            self._start_literal(size)
            return NeedContinuation(size)
        if size > limits.max_command_size:
            return self._fatal(tag, size)
        nonsync_max = limits.max_nonsync_literal
        over_nonsync = nonsync_max is not None and size > nonsync_max
        if too_big or over_nonsync:
            # The client sends the octets anyway: count them off unread so
            # that they are never taken for commands (RFC 7888 §4, choice 1).
            self._reset_command()
            self._discarding = True
            self._remaining = size
            self._state = _State.SKIP_LITERAL
            if over_nonsync:
                # RFC 7888 §5 (LITERAL-): tagged BAD with TOOBIG.
                self._pending = ProtocolError(
                    tag, f"Non-synchronizing literal of {size} octets is over "
                    f"{nonsync_max}; send it as a synchronizing literal {{{size}}}",
                    code="TOOBIG")
            else:
                self._pending = ProtocolError(tag, f"Literal of {size} octets is too big",
                                              code="TOOBIG", status="NO")
            return None
        self._start_literal(size)
        return None

    def _start_literal(self, size: int) -> None:
        self._size += size
        self._remaining = size
        self._literal = bytearray()
        if size:
            self._state = _State.LITERAL
        else:
            self._literals.append(b"")

    def _check_prefix(self, tag: str | None) -> ProtocolError | None:
        """Before inviting a literal, make sure what came before it parses,
        so that a broken command is refused without its data being sent."""
        if tag is None:
            return ProtocolError(None, "Invalid or missing tag")
        try:
            parse_command(self._segments, self._literals, self.limits.max_nesting)
        except Incomplete:
            return None
        except ParseError as exc:
            return ProtocolError(tag, exc.message, code=exc.code)
        except RecursionError:
            return ProtocolError(tag, "Command nested too deeply", code="LIMIT")
        return None

    def _finish(self, tag: str | None) -> ParserEvent:
        segments, literals = self._segments, self._literals
        self._reset_command()
        if tag is None:
            return ProtocolError(None, "Invalid or missing tag")
        try:
            return parse_command(segments, literals, self.limits.max_nesting)
        except Incomplete:
            # only a literal marker that framing did not see can get here
            return ProtocolError(tag, "Literal data missing")
        except ParseError as exc:
            return ProtocolError(tag, exc.message, code=exc.code)
        except RecursionError:
            return ProtocolError(tag, "Command nested too deeply", code="LIMIT")
