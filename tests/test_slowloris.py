"""1,000 slow-loris connections are shed without affecting a normal client.

Each slow client connects (from one of 20 loopback addresses, 50 each: the
per-address cap), then sends one byte every second and never finishes a
line, which resets any per-read timeout forever. ``[limits]
preauth_timeout`` is a deadline from the connection's start (docs/config.md),
so the server must close every one of them once it passes, while a normal
client logs in, selects and fetches in the meantime.

No timed assertions: the deadline is long enough for the normal client to
finish first (if it is not, the test says so), and the wait for the slow
connections to close is bounded only so that a broken server fails the test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import imaplib
import shutil
from collections.abc import Iterator

import pytest
import testserver

SLOW = 1000
SOURCES = 20                       # 50 connections each: max_connections_per_ip
PREAUTH_TIMEOUT = 20


@pytest.fixture(scope="module")
def loris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testserver.TestServer]:
    srv = testserver.TestServer(tmp_path_factory.mktemp("mailbag-loris"))
    srv.extra_config = (
        f"[limits]\npreauth_timeout = {PREAUTH_TIMEOUT}\nmax_connections = {SLOW + 24}\n"
    )
    srv.write_config()
    srv.add_user("alice", "alice-pw")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


class Loris:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.greeting = b""
        self.closed = asyncio.Event()
        self.farewell = b""

    async def dribble(self) -> None:
        """One byte a second, never a line end; stops when the server closes."""
        try:
            while not self.closed.is_set():
                self.writer.write(b"a")
                await self.writer.drain()
                await asyncio.sleep(1.0)
        except (ConnectionError, OSError):
            self.closed.set()

    async def watch(self) -> None:
        try:
            while data := await self.reader.read(4096):
                self.farewell += data
        except (ConnectionError, OSError):
            pass
        self.closed.set()


async def open_loris(port: int, source: str) -> Loris:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    loris = Loris(reader, writer)
    loris.greeting = await reader.readline()
    return loris


def normal_client(port: int) -> list[bytes]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        imap.login("alice", "alice-pw")
        imap.append("INBOX", None, None, b"Subject: hi\r\n\r\nhello\r\n")
        typ, _ = imap.select("INBOX")
        assert typ == "OK"
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        return [d[1] for d in data if isinstance(d, tuple)]
    finally:
        imap.logout()


async def test_slow_loris_connections_are_shed(loris_server: testserver.TestServer) -> None:
    port = loris_server.imap_port
    lorises: list[Loris] = []
    for i in range(SLOW):
        lorises.append(await open_loris(port, f"127.0.3.{1 + i % SOURCES}"))
    assert all(lo.greeting.startswith(b"* OK") for lo in lorises)
    tasks = [asyncio.ensure_future(lo.dribble()) for lo in lorises]
    tasks += [asyncio.ensure_future(lo.watch()) for lo in lorises]
    try:
        bodies = await asyncio.to_thread(normal_client, port)
        assert bodies and bodies[-1].startswith(b"Subject: hi")
        still_open = sum(not lo.closed.is_set() for lo in lorises)
        assert still_open == SLOW, (
            f"only {still_open} slow connections were open when the normal client was done;"
            " raise PREAUTH_TIMEOUT for this machine"
        )
        # Bounded wait: a server that never sheds them fails here.
        await asyncio.wait_for(
            asyncio.gather(*(lo.closed.wait() for lo in lorises)), PREAUTH_TIMEOUT + 90
        )
    finally:
        for t in tasks:
            t.cancel()
        for lo in lorises:
            lo.writer.close()
    # Told why, not just cut off.
    assert sum(b"BYE" in lo.farewell for lo in lorises) == SLOW
    log = loris_server.log_text()
    assert log.count("preauth-timeout") >= SLOW
    # The server still serves.
    assert (await asyncio.to_thread(normal_client, port))


async def test_pop3_slow_loris_connections_are_shed(loris_server: testserver.TestServer) -> None:
    # The same deadline guards POP3's AUTHORIZATION state (RFC 1939 §3).
    port = loris_server.pop3_port
    lorises = []
    for i in range(50):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(f"127.0.4.{1 + i % 5}", 0))
        lo = Loris(reader, writer)
        lo.greeting = await reader.readline()
        lorises.append(lo)
    assert all(lo.greeting.startswith(b"+OK") for lo in lorises)
    tasks = [asyncio.ensure_future(lo.dribble()) for lo in lorises]
    tasks += [asyncio.ensure_future(lo.watch()) for lo in lorises]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(lo.closed.wait() for lo in lorises)), PREAUTH_TIMEOUT + 90
        )
    finally:
        for t in tasks:
            t.cancel()
        for lo in lorises:
            lo.writer.close()
    assert sum(b"-ERR" in lo.farewell for lo in lorises) == 50
