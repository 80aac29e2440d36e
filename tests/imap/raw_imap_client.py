"""A raw IMAP client for the tests: a plain socket and one command at a
time, so a test sees exactly the lines the server sends. Each test module
adds the commands it needs (run/ok/append) on top."""

from __future__ import annotations

import itertools
import re
import socket

_LITERAL = re.compile(rb"\{(\d+)\}$")


class RawClient:
    # Join a response's "{n}" literals into its line; off, each CRLF ends a line.
    inline_literals = True

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.tags = itertools.count(1)
        self.greeting = self.line()
        assert self.greeting.startswith(b"* OK"), self.greeting

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def line(self) -> bytes:
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line
            m = _LITERAL.search(line) if self.inline_literals else None
            if not m:
                return out
            n = int(m[1])
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def send(self, command: str | bytes, prefix: bytes = b"t") -> tuple[bytes, bytes]:
        """Send ``tag command``; the tag and the command as bytes."""
        tag = prefix + b"%d" % next(self.tags)
        raw = command.encode() if isinstance(command, str) else command
        self.sock.sendall(tag + b" " + raw + b"\r\n")
        return tag, raw
