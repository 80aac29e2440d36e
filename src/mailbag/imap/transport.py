"""The byte stream of one IMAP connection: TCP, then optionally TLS (implicit
TLS, RFC 8314 §3.3, or STARTTLS, RFC 9051 §6.2.1; TLS 1.2/1.3 without
renegotiation) and optionally COMPRESS=DEFLATE (RFC 4978 §4: raw deflate in
both directions, a sync flush after each batch of output). The layers stack
as RFC 4978 §4 requires: compression inside TLS.

Why not asyncio's StreamReader/StreamWriter and its TLS transport: an idle
connection must cost a few kilobytes (issue 3: 10,000 IDLE connections, at
most 30 KB each in plain text and 40 KB over TLS). asyncio's SSL protocol
keeps a 256 KiB read buffer per connection, and IDLE on streams needed two
tasks per waiting session. Here one ``asyncio.Protocol`` per connection
drives an ``ssl.SSLObject`` over two ``ssl.MemoryBIO`` (OpenSSL releases its
record buffers between reads: CPython sets SSL_MODE_RELEASE_BUFFERS), keeps
only the bytes received and not yet read, and has a single waiter that both
incoming data and a store change (``poke``) resolve.

The object offers what the session used from the stream pair (``read``,
``write``, ``drain``, ``close``, ``get_extra_info``, ``start_tls``, and
``_buffer``/``_waiter``, which tls.unread_input and the server's shutdown
look at), plus ``read_or_wake`` for IDLE and ``start_compress``.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Callable
from typing import Any, cast

# At most this much plaintext waits to be read before the socket is paused
# (the limit asyncio.start_server(limit=256 KiB) used to give).
HIGH_WATER = 256 * 1024
# One TLS record carries at most 16 KiB of plaintext.
TLS_READ = 16 * 1024
# RFC 4978 §4: raw deflate (no zlib header). The inflater must accept any
# window the client chose (32 KiB); our own output may use a smaller one,
# which every inflater reads. zlib's defaults (32 KiB window, memLevel 8)
# cost a compressing connection up to 256 KiB of state; a 4 KiB window and
# memLevel 6 cost 48 KiB and lose little on IMAP's short, repetitive lines.
INFLATE_WBITS = -15
DEFLATE_WBITS = -12
DEFLATE_MEMLEVEL = 6


class Wake:
    """The session's "the selected mailbox changed" signal, delivered
    through the connection's one read waiter (set/clear/is_set like
    asyncio.Event, which the server and IDLE used before)."""

    __slots__ = ("conn", "flag")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.flag = False

    def set(self) -> None:
        self.flag = True
        self.conn.poke()

    def clear(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag


class Connection(asyncio.Protocol):
    """One connection's protocol object and its session's stream."""

    def __init__(self, on_ready: Callable[[Connection], None],
                 tls_context: ssl.SSLContext | None = None,
                 handshake_timeout: float = 30.0) -> None:
        self._on_ready = on_ready
        self._implicit_tls = tls_context
        self._handshake_timeout = handshake_timeout
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()          # plaintext received, not read yet
        self._eof = False
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._ssl: ssl.SSLObject | None = None
        self._in_bio: ssl.MemoryBIO | None = None
        self._out_bio: ssl.MemoryBIO | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._inflate: Any = None            # zlib decompress object
        self._deflate: Any = None            # zlib compress object
        self._zpending = b""                 # compressed input not inflated yet
        self._fd = -1                        # the socket's, for imap/fanout.py

    # ------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._fd = sock.fileno()
        if self._implicit_tls is None:
            self._on_ready(self)
            return
        fut = self._begin_tls(self._implicit_tls)

        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._on_ready(self)
            else:
                self.abort()
        fut.add_done_callback(done)

    def data_received(self, data: bytes) -> None:
        if self._ssl is None:
            self._plain(data)
            return
        assert self._in_bio is not None
        self._in_bio.write(data)
        if self._handshake is not None and not self._handshake.done():
            self._do_handshake()
            if self._handshake is None or not self._handshake.done():
                return
        self._tls_read()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake_reader()
        return False        # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._eof = True
        self._wake_reader()
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(ConnectionResetError("connection lost in TLS handshake"))
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # --------------------------------------------------------------- input
    def _plain(self, data: bytes) -> None:
        if self._inflate is not None:
            self._zpending += data
            self._inflate_some()
        else:
            self._buffer += data
        if len(self._buffer) >= HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def _inflate_some(self) -> None:
        # Bounded output per step: a few compressed bytes may inflate to
        # gigabytes; what does not fit stays compressed until read() makes room.
        z = self._inflate
        while self._zpending and len(self._buffer) < HIGH_WATER:
            try:
                out = z.decompress(self._zpending, HIGH_WATER)
            except zlib.error:
                self._zpending = b""
                self._eof = True          # corrupt stream: nothing more can be read
                self.abort()
                return
            self._zpending = z.unconsumed_tail
            self._buffer += out
            if not out and self._zpending:
                break

    def _wake_reader(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _take(self, n: int) -> bytes:
        if n < 0 or n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
        if self._zpending:
            self._inflate_some()
        if self._reading_paused and len(self._buffer) < HIGH_WATER // 2 and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def _wait(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            self._waiter = None

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all buffered for -1); b"" at end of stream."""
        while not self._buffer and not self._eof:
            await self._wait()        # poke() also ends a wait: not for us
        return self._take(n)

    async def read_within(self, n: int, timeout: float) -> bytes:
        """read(), or TimeoutError after *timeout* seconds without input.
        What wait_for(read()) does, without a task and a cancellation per
        command: a session reads once per command."""
        if self._buffer or self._eof:
            return self._take(n)
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wake_reader()

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            while not self._buffer and not self._eof:
                if expired:
                    raise TimeoutError
                await self._wait()
        finally:
            timer.cancel()
        return self._take(n)

    async def read_or_wake(self, n: int = -1) -> bytes | None:
        """Like read(), but None as soon as poke() is (or was) called."""
        while not self._woken and not self._buffer and not self._eof:
            await self._wait()
        if self._woken:
            self._woken = False
            return None
        return self._take(n)

    def poke(self) -> None:
        self._woken = True
        self._wake_reader()

    # -------------------------------------------------------------- output
    def write(self, data: bytes) -> None:
        if self._lost or self.transport is None or self.transport.is_closing():
            return
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        if self._ssl is not None:
            try:
                data = self.seal(data)
            except ssl.SSLError:
                self.abort()
                return
        self.transport.write(data)

    def direct(self, data: bytes) -> tuple[int, bytes] | None:
        """(socket, bytes) for imap/fanout.py to send itself: *data* as is,
        or as TLS records on a TLS connection. None when *data* must go
        through write(): the transport still holds earlier output (it would
        be overtaken), or the connection is closing, compressing or in its
        TLS handshake. Raises ssl.SSLError."""
        t = self.transport
        if (self._lost or t is None or self._fd < 0 or t.is_closing()
                or self._deflate is not None or t.get_write_buffer_size()):
            return None
        if self._ssl is None:
            return self._fd, data
        if self._handshake is None or not self._handshake.done():
            return None
        return self._fd, self.seal(data)

    def seal(self, data: bytes) -> bytes:
        """*data* as TLS records. Raises ssl.SSLError."""
        assert self._ssl is not None and self._out_bio is not None
        n = self._ssl.write(data)
        if n < len(data):
            # More than one record's worth; the common short line (an IDLE
            # push writes 10,000 of them) is one call.
            view = memoryview(data)[n:]
            while view:
                view = view[self._ssl.write(view):]
        return self._out_bio.read()

    def write_sealed(self, data: bytes) -> None:
        """Queue bytes that are already TLS records (or plain text on a
        plain connection): the rest of a direct send the socket did not take."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("connection lost")
        if self._writing_paused:
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiter = fut
            try:
                await fut
            finally:
                self._drain_waiter = None
            if self._lost:
                raise ConnectionResetError("connection lost")

    def is_closing(self) -> bool:
        return self._lost or self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._ssl is not None and self._handshake is not None and self._handshake.done():
            try:
                self._ssl.unwrap()            # queue close_notify
            except ssl.SSLError:
                pass
            self._flush_tls()
        self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._ssl if self._ssl is not None else default
        if name == "cipher":
            return self._ssl.cipher() if self._ssl is not None else default
        if name == "compression":
            return "DEFLATE" if self._deflate is not None else default
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)

    # ----------------------------------------------------------------- TLS
    @property
    def tls_active(self) -> bool:
        return self._ssl is not None

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """STARTTLS: every byte from now on is TLS. The caller has dropped
        the clear text received so far (tls.unread_input)."""
        self._buffer.clear()
        await self._begin_tls(context)

    def _begin_tls(self, context: ssl.SSLContext) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        self._in_bio, self._out_bio = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._in_bio, self._out_bio, server_side=True)
        self._handshake = fut = loop.create_future()
        timer = loop.call_later(self._handshake_timeout, self._handshake_timed_out)
        fut.add_done_callback(lambda _: timer.cancel())
        self._do_handshake()
        return fut

    def _handshake_timed_out(self) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(TimeoutError("TLS handshake timed out"))
            self.abort()

    def _do_handshake(self) -> None:
        assert self._ssl is not None and self._handshake is not None
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return
        except (ssl.SSLError, OSError) as exc:
            self._flush_tls()           # the alert, if OpenSSL wrote one
            if not self._handshake.done():
                self._handshake.set_exception(exc)
            self.abort()
            return
        self._flush_tls()               # Finished, TLS 1.3 session tickets
        if not self._handshake.done():
            self._handshake.set_result(None)

    def _tls_read(self) -> None:
        assert self._ssl is not None
        while True:
            try:
                chunk = self._ssl.read(TLS_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:    # close_notify
                self._eof = True
                self._wake_reader()
                break
            except ssl.SSLError:
                self._eof = True
                self._wake_reader()
                self.abort()
                return
            if not chunk:
                break
            self._plain(chunk)
        # Reading may produce output (a TLS 1.3 KeyUpdate answer).
        self._flush_tls()

    def _flush_tls(self) -> None:
        out = self._out_bio
        if out is not None and out.pending and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.write(out.read())

    # ------------------------------------------------------- COMPRESS (RFC 4978)
    @property
    def compressing(self) -> bool:
        return self._deflate is not None

    def start_compress(self, unread: bytes = b"") -> None:
        """Deflate everything written from now on and inflate everything
        read. ``unread`` is input the session had already taken from this
        stream but not parsed: it followed the COMPRESS command, so it is
        compressed too, and goes in front of what is still buffered here."""
        self._inflate = zlib.decompressobj(INFLATE_WBITS)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, DEFLATE_WBITS, DEFLATE_MEMLEVEL)
        raw = unread + bytes(self._buffer)
        self._buffer.clear()
        if raw:
            self._plain(raw)
