"""imap/fanout.py: one response written to many connections, by the event
loop's thread and the helper thread, over real loopback sockets (plain and
TLS). What must hold: every connection gets its bytes exactly once and in
order after what it was sent before; output the transport still holds is
not overtaken; a send the socket takes only in part is finished by the
transport; a connection whose send fails is aborted."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from testserver import client_tls

from mailbag.imap import fanout
from mailbag.imap.transport import Connection
from mailbag.tls import ensure_certificate, server_context

LINE = b"* 7 EXISTS\r\n"
SENDERS: list[Callable[[list[tuple[int, bytes]]], list[tuple[int, int]]]] = [
    fanout._send_all_py]
if fanout._send_all_c is not None:
    SENDERS.append(fanout._send_all_c)


class Pairs:
    """Server-side Connections and their clients' streams."""

    def __init__(self, tls_dir: Path | None) -> None:
        self.tls = server_context(*ensure_certificate(tls_dir, None, None)[:2]) \
            if tls_dir is not None else None
        self.ready: asyncio.Queue[Connection] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: Connection(self.ready.put_nowait, self.tls), "127.0.0.1", 0)

    async def connect(self, n: int, **sockopts: int
                      ) -> list[tuple[Connection, asyncio.StreamReader, asyncio.StreamWriter]]:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        cctx = client_tls() if self.tls is not None else None
        out = []
        for _ in range(n):
            sock = socket.socket()
            for opt, value in sockopts.items():
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, opt), value)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, ssl=cctx,
                                                           server_hostname="" if cctx else None)
            conn = await asyncio.wait_for(self.ready.get(), 10)
            out.append((conn, reader, writer))
            self.writers.append(writer)
        return out

    async def connect_raw(self) -> tuple[Connection, socket.socket]:
        """A blocking client socket (TLS handshaken in a worker thread)."""
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]

        def connect() -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            return client_tls().wrap_socket(sock) if self.tls is not None else sock

        sock = await asyncio.get_running_loop().run_in_executor(None, connect)
        return await asyncio.wait_for(self.ready.get(), 10), sock

    async def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        if self.server is not None:
            self.server.close()


@pytest.fixture(params=["plain", "tls"])
async def pairs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pairs]:
    p = Pairs(tmp_path if request.param == "tls" else None)
    await p.start()
    yield p
    await p.close()


@pytest.fixture(params=["helper", "inline", "no-c-module"])
def fan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[fanout.Fanout]:
    if request.param == "helper" and fanout._send_all_c is None:
        pytest.skip("mailbag.imap._sendmany was not built (no C compiler at install)")
    if request.param == "no-c-module":
        monkeypatch.setattr(fanout, "_send_all_c", None)
    monkeypatch.setattr(fanout, "CHUNK", 4)      # many chunks from few connections
    f = fanout.Fanout(threaded=request.param == "helper")
    yield f
    f.close()


async def test_every_connection_gets_its_bytes_once_in_order(
        pairs: Pairs, fan: fanout.Fanout) -> None:
    conns = await pairs.connect(23)
    for i, (conn, _, _) in enumerate(conns):
        conn.write(b"* OK before %d\r\n" % i)
    batch = fan.batch()
    for i, (conn, _, _) in enumerate(conns):
        batch.add(conn, b"* %d EXISTS\r\n" % i)
    batch.finish()
    batch.finish()                    # a finished batch has nothing left to send
    for i, (conn, _, _) in enumerate(conns):
        conn.write(b"* OK after %d\r\n" % i)
    for i, (_, reader, _) in enumerate(conns):
        expect = b"* OK before %d\r\n* %d EXISTS\r\n* OK after %d\r\n" % (i, i, i)
        assert await asyncio.wait_for(reader.readexactly(len(expect)), 10) == expect


async def test_output_the_transport_holds_is_not_overtaken(
        pairs: Pairs, fan: fanout.Fanout) -> None:
    [(conn, reader, _)] = await pairs.connect(1, SO_RCVBUF=4096)
    assert conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    blob = os.urandom(1 << 19).hex().encode()        # far more than the socket buffers hold
    conn.write(blob)
    assert conn.transport.get_write_buffer_size() > 0
    assert conn.direct(LINE) is None                  # so the batch must queue, not send
    batch = fan.batch()
    batch.add(conn, LINE)
    batch.finish()
    got = await asyncio.wait_for(reader.readexactly(len(blob) + len(LINE)), 10)
    assert got == blob + LINE


async def test_a_short_send_is_finished_by_the_transport(
        pairs: Pairs, fan: fanout.Fanout) -> None:
    if pairs.tls is not None:
        pytest.skip("plain only: filling a TLS socket behind the transport would split "
                    "a record; TLS bytes take the same path once sealed")
    [(conn, reader, _)] = await pairs.connect(1, SO_RCVBUF=4096)
    assert conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    # Fill the kernel's buffers behind the transport's back: its own buffer
    # stays empty (a direct send is allowed) and the socket is full.
    filler = bytearray()
    while True:
        try:
            n = os.write(conn._fd, b"f" * 1024)
        except BlockingIOError:
            break
        filler += b"f" * n
    assert conn.transport.get_write_buffer_size() == 0
    big = b"* %s\r\n" % (b"x" * 20000)
    batch = fan.batch()
    batch.add(conn, big)
    batch.finish()
    assert conn.transport.get_write_buffer_size() > 0   # the rest, queued there
    got = await asyncio.wait_for(reader.readexactly(len(filler) + len(big)), 10)
    assert got == bytes(filler) + big


async def test_a_failed_send_aborts_the_connection(pairs: Pairs, fan: fanout.Fanout) -> None:
    conns = await pairs.connect(6)
    victim, raw = await pairs.connect_raw()
    # RST, not FIN: the server's next send fails (ECONNRESET/EPIPE). No
    # await until the batch is done, so the event loop cannot notice first.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    batch = fan.batch()
    batch.add(victim, LINE)
    for conn, _, _ in conns:
        batch.add(conn, LINE)
    batch.finish()
    assert victim.is_closing()
    for conn, reader, _ in conns:
        assert await asyncio.wait_for(reader.readexactly(len(LINE)), 10) == LINE
        assert not conn.is_closing()


async def test_a_helper_that_fails_aborts_its_chunk(
        pairs: Pairs, fan: fanout.Fanout, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(items: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
        raise RuntimeError("simulated")

    monkeypatch.setattr(fanout, "_send_all_c", broken)
    monkeypatch.setattr(fanout, "_send_all_py", broken)
    conns = await pairs.connect(5)
    batch = fan.batch()
    for conn, _, _ in conns:
        batch.add(conn, LINE)
    batch.finish()
    assert all(conn.is_closing() for conn, _, _ in conns)


@pytest.mark.parametrize("send_all", SENDERS, ids=lambda f: f.__module__.rsplit(".", 1)[-1])
def test_send_all_reports_what_it_did_not_write(send_all: Callable[..., object]) -> None:
    r, w = os.pipe()
    try:
        os.set_blocking(w, False)
        assert send_all([(w, b"abc"), (w, b"de")]) == []
        assert os.read(r, 10) == b"abcde"
        closed_r, closed_w = os.pipe()
        os.close(closed_w)
        short = send_all([(w, b"ok"), (closed_w, b"x"), (w, b"!")])
        assert short == [(1, -9)]                  # EBADF; the others were written
        assert os.read(r, 10) == b"ok!"
        os.close(closed_r)
        big = b"y" * (1 << 20)                     # more than a pipe holds
        [(i, n)] = send_all([(w, big)])
        assert i == 0 and 0 < n < len(big)
        [(i, n)] = send_all([(w, b"z")])           # the pipe is full: EAGAIN
        assert (i, n) == (0, 0)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.skipif(fanout._send_all_c is None, reason="mailbag.imap._sendmany not built")
def test_send_all_refuses_what_is_not_fd_and_bytes() -> None:
    assert fanout._send_all_c is not None
    with pytest.raises(TypeError):
        fanout._send_all_c([(1, "text")])          # type: ignore[list-item]
    with pytest.raises(TypeError):
        fanout._send_all_c([(1,)])                 # type: ignore[list-item]
    with pytest.raises(ValueError):
        fanout._send_all_c([(-1, b"x")])
