"""COMPRESS=DEFLATE (RFC 4978) against the real server: imaplib with a
deflating socket layer, and a raw client that checks the wire bytes
(the OK in clear text, raw deflate after it, pipelined input, IDLE pushes
that arrive without waiting for more output, TLS underneath)."""

from __future__ import annotations

import imaplib
import socket
import zlib
from typing import Any

import pytest
from testserver import client_tls

from conftest import USERS

# imaplib refuses commands it does not know.
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))

MSG = b"From: a@example.org\r\nSubject: compressed\r\n\r\n" + b"hello world " * 200 + b"\r\n"


class DeflateMixin:
    """imaplib with COMPRESS=DEFLATE: wraps the socket's reads and writes
    in raw deflate once compress() succeeded."""

    _inflate: Any = None
    _deflate: Any = None
    _pending = b""
    wire_in = 0          # compressed bytes received
    plain_in = 0         # bytes after inflating

    def compress(self) -> tuple[str, list[Any]]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")  # type: ignore[attr-defined]
        if typ == "OK":
            self._inflate = zlib.decompressobj(-15)
            self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        return typ, data

    def send(self, data: bytes) -> None:
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)  # type: ignore[misc]

    def _fill(self) -> None:
        raw = self.sock.recv(65536)  # type: ignore[attr-defined]
        if not raw:
            raise imaplib.IMAP4.abort("EOF")
        self.wire_in += len(raw)
        out = self._inflate.decompress(raw)
        self.plain_in += len(out)
        self._pending += out

    def readline(self) -> bytes:
        if self._inflate is None:
            return super().readline()  # type: ignore[misc, no-any-return]
        while b"\n" not in self._pending:
            self._fill()
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    def read(self, size: int) -> bytes:
        if self._inflate is None:
            return super().read(size)  # type: ignore[misc, no-any-return]
        while len(self._pending) < size:
            self._fill()
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


class DeflateIMAP4(DeflateMixin, imaplib.IMAP4):
    pass


class DeflateIMAP4SSL(DeflateMixin, imaplib.IMAP4_SSL):
    pass


def _session(client: imaplib.IMAP4) -> None:
    client.login("alice", USERS["alice"])
    typ, caps = client.capability()
    assert typ == "OK" and b"COMPRESS=DEFLATE" in caps[0].split()
    typ, _ = client.compress()  # type: ignore[attr-defined]
    assert typ == "OK"
    typ, _ = client.append("INBOX", None, None, MSG)
    assert typ == "OK"
    typ, data = client.select("INBOX")
    assert typ == "OK"
    n = int(data[0])
    typ, data = client.fetch(str(n), "(BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == MSG
    typ, data = client.search(None, "SUBJECT", "compressed")
    assert typ == "OK" and str(n).encode() in data[0].split()
    # A second COMPRESS is refused with the response code (§3).
    typ, data = client._simple_command("COMPRESS", "DEFLATE")  # type: ignore[attr-defined]
    assert typ == "NO" and b"[COMPRESSIONACTIVE]" in data[0], data
    assert client.plain_in > client.wire_in   # type: ignore[attr-defined]
    client.logout()


def test_imaplib_plain(server: Any) -> None:
    _session(DeflateIMAP4("127.0.0.1", server.imap_port))


def test_imaplib_over_tls(server: Any) -> None:
    _session(DeflateIMAP4SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls()))


def test_imaplib_after_starttls(server: Any) -> None:
    client = DeflateIMAP4("127.0.0.1", server.imap_port)
    client.starttls(client_tls())
    _session(client)


# ----------------------------------------------------------------- raw client

class Raw:
    def __init__(self, port: int, tls: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock: socket.socket = client_tls().wrap_socket(sock) if tls else sock
        self.buf = b""
        self.inflate: Any = None
        self.deflate: Any = None

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def fill(self) -> None:
        raw = self.sock.recv(65536)
        if not raw:
            raise ConnectionError("server closed the connection")
        self.buf += self.inflate.decompress(raw) if self.inflate is not None else raw

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def tagged(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag + b" "):
                return lines

    def start(self) -> None:
        assert self.line().startswith(b"* OK")
        self.send(b'L LOGIN alice "%s"\r\n' % USERS["alice"].encode())
        assert self.tagged(b"L")[-1].startswith(b"L OK")

    def compress_on(self, pipelined: bytes = b"") -> None:
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        rest = self.deflate.compress(pipelined) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        # The command and what follows it in one write: the server must
        # inflate the part it already read as clear text.
        self.sock.sendall(b"Z COMPRESS DEFLATE\r\n" + (rest if pipelined else b""))
        # The OK is clear text; it may share a segment with compressed bytes.
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        ok, _, after = self.buf.partition(b"\r\n")
        assert ok.startswith(b"Z OK"), ok
        self.inflate = zlib.decompressobj(-15)
        self.buf = self.inflate.decompress(after) if after else b""

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("tls", [False, True])
def test_raw_pipelined_after_compress(server: Any, tls: bool) -> None:
    c = Raw(server.imaps_port if tls else server.imap_port, tls=tls)
    try:
        c.start()
        c.compress_on(b"N NOOP\r\nS SELECT INBOX\r\n")
        assert c.tagged(b"N")[-1].startswith(b"N OK")
        assert c.tagged(b"S")[-1].startswith(b"S OK")
        c.send(b"Y COMPRESS DEFLATE\r\n")
        assert c.tagged(b"Y")[-1].startswith(b"Y NO [COMPRESSIONACTIVE]")
        c.send(b"O LOGOUT\r\n")
        assert c.tagged(b"O")[-1].startswith(b"O OK")
    finally:
        c.close()


def test_raw_unknown_mechanism_and_not_before_login(server: Any) -> None:
    c = Raw(server.imap_port)
    try:
        assert c.line().startswith(b"* OK")
        c.send(b"A COMPRESS DEFLATE\r\n")
        assert c.tagged(b"A")[-1].startswith(b"A BAD")
        c.send(b'L LOGIN alice "%s"\r\n' % USERS["alice"].encode())
        assert c.tagged(b"L")[-1].startswith(b"L OK")
        c.send(b"B COMPRESS LZW\r\n")
        assert c.tagged(b"B")[-1].startswith(b"B BAD")
        c.send(b"C NOOP\r\n")                 # still clear text
        assert c.tagged(b"C")[-1].startswith(b"C OK")
    finally:
        c.close()


@pytest.mark.parametrize("tls", [False, True])
def test_idle_push_over_compress(server: Any, tls: bool) -> None:
    """An IDLE push is flushed (Z_SYNC_FLUSH) on its own: the client can
    inflate the EXISTS without the server writing anything else."""
    idler = Raw(server.imaps_port if tls else server.imap_port, tls=tls)
    other = Raw(server.imap_port)
    try:
        idler.start()
        idler.compress_on()
        idler.send(b"S SELECT INBOX\r\n")
        exists = [ln for ln in idler.tagged(b"S") if ln.endswith(b" EXISTS")]
        before = int(exists[0].split()[1])
        idler.send(b"I IDLE\r\n")
        assert idler.line().startswith(b"+ ")
        other.start()
        other.send(b"A APPEND INBOX {%d+}\r\n%s\r\n" % (len(MSG), MSG))
        assert other.tagged(b"A")[-1].startswith(b"A OK")
        assert idler.line() == b"* %d EXISTS" % (before + 1)
        idler.send(b"DONE\r\n")
        assert idler.tagged(b"I")[-1].startswith(b"I OK")
    finally:
        idler.close()
        other.close()
