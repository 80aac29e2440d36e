"""Import/export progress on stderr: a redrawn bar on a terminal, plain
lines (one per folder, and every ``PLAIN_EVERY`` messages) otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY = 1000
REDRAW_SECONDS = 0.2
BAR_WIDTH = 24


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    def __init__(self, stream: TextIO | None = None, *, verb: str = "imported") -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.verb = verb
        self.started = time.monotonic()
        self.messages = 0
        self.bytes = 0
        self.folder = ""
        self.folder_index = 0
        self.folder_count = 0
        self.folder_done = 0
        self.folder_total: int | None = None
        self._last_draw = 0.0
        self._last_plain = 0

    def start_folder(self, name: str, index: int, count: int, total: int | None) -> None:
        self.folder, self.folder_index, self.folder_count = name, index, count
        self.folder_done, self.folder_total = 0, total
        self._draw(force=True)

    def advance(self, messages: int, nbytes: int, handled: int | None = None) -> None:
        """``messages``/``nbytes`` written; ``handled``: folder entries done
        (written, already there or skipped)."""
        self.messages += messages
        self.bytes += nbytes
        self.folder_done += messages if handled is None else handled
        if not self.tty and self.messages - self._last_plain >= PLAIN_EVERY:
            self._last_plain = self.messages
            self._plain()
        self._draw()

    def end_folder(self, summary: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"[{self.folder_index}/{self.folder_count}] {self.folder}: {summary}\n")
        self.stream.flush()

    def rates(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (f"{self.messages} msgs, {human_bytes(self.bytes)} "
                f"({self.messages / elapsed:.1f} msg/s, {human_bytes(self.bytes / elapsed)}/s)")

    def _plain(self) -> None:
        self.stream.write(f"... {self.folder}: {self.verb} {self.rates()}\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        if self.folder_total:
            filled = int(BAR_WIDTH * min(self.folder_done, self.folder_total) / self.folder_total)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            where = f"[{bar}] {self.folder_done}/{self.folder_total}"
        else:
            where = f"{self.folder_done}"
        line = (f"[{self.folder_index}/{self.folder_count}] {self.folder} {where}"
                f"  total {self.rates()}")
        self.stream.write("\r\x1b[K" + line[:200])
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
