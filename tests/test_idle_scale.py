"""IDLE at scale, functionally (not timed): hundreds of idlers in one mailbox,
some over TLS and some over COMPRESS, are all told of a new message and of a
flag change and an expunge; idlers in another mailbox are not disturbed; a
real TLS client (curl imaps) still works on the server's own TLS layer."""

from __future__ import annotations

import resource
import shutil
import socket
import ssl
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testserver

IDLERS = 500
PASSWORD = "idle-pw"
MSG = b"From: a@example.org\r\nSubject: push\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testserver.TestServer]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * IDLERS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * IDLERS), hard))
    srv = testserver.TestServer(tmp_path_factory.mktemp("idle-scale"),
                     extra_config="[limits]\nmax_connections = 2000\n"
                                  "max_connections_per_ip = 2000\n")
    srv.write_config()
    srv.add_user("ida", PASSWORD)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


class Idler:
    def __init__(self, port: int, tls: bool = False, compress: bool = False,
                 mailbox: bytes = b"INBOX") -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.inflate: Any = None
        self.deflate: Any = None
        self.send(b'L LOGIN ida "%s"\r\n' % PASSWORD.encode())
        self.until(b"L OK")
        if compress:
            self.send(b"Z COMPRESS DEFLATE\r\n")
            self.until(b"Z OK")
            self.until(b"\r\n")          # the OK line is the last clear text
            self.inflate = zlib.decompressobj(-15)
            self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.buf = self.inflate.decompress(self.buf)
        self.send(b"S SELECT " + mailbox + b"\r\nI IDLE\r\n")
        self.until(b"\r\n+ ")
        self.buf = b""

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            raw = self.sock.recv(65536)
            if not raw:
                raise ConnectionError(f"closed waiting for {marker!r}: {self.buf[-200:]!r}")
            self.buf += self.inflate.decompress(raw) if self.inflate is not None else raw
        head, _, self.buf = self.buf.partition(marker)
        return head

    def close(self) -> None:
        self.sock.close()


def command(port: int, *lines: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b'L LOGIN ida "%s"\r\n' % PASSWORD.encode() + b"".join(lines)
                  + b"Q LOGOUT\r\n")
        out = b""
        while b"Q OK" not in out:
            data = s.recv(65536)
            if not data:
                break
            out += data
        return out


def test_every_idler_hears_every_change(big: testserver.TestServer) -> None:
    out = command(big.imap_port, b"C CREATE Other\r\n")
    assert b"C OK" in out
    idlers: list[Idler] = []
    try:
        for i in range(IDLERS):
            idlers.append(Idler(big.imaps_port if i % 10 == 0 else big.imap_port,
                                tls=i % 10 == 0, compress=i % 7 == 0))
        others = [Idler(big.imap_port, mailbox=b"Other") for _ in range(5)]

        out = command(big.imap_port, b"A APPEND INBOX {%d+}\r\n%s\r\n" % (len(MSG), MSG))
        assert b"A OK" in out
        for idler in idlers:
            idler.until(b"* 1 EXISTS\r\n")

        out = command(big.imap_port, b"S SELECT INBOX\r\nF STORE 1 +FLAGS (\\Flagged)\r\n")
        assert b"F OK" in out
        for idler in idlers:
            line = idler.until(b"\r\n")
            assert line.startswith(b"* 1 FETCH (FLAGS (") and b"\\Flagged" in line, line

        out = command(big.imap_port, b"S SELECT INBOX\r\nD STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"
                                     b"E EXPUNGE\r\n")
        assert b"E OK" in out
        for idler in idlers:
            idler.until(b"* 1 EXPUNGE\r\n")

        # The idlers of the other mailbox heard nothing and still IDLE.
        for other in others:
            other.send(b"DONE\r\n")
            assert b"EXISTS" not in other.until(b"I OK")
        for idler in idlers[:20]:
            idler.send(b"DONE\r\n")
            idler.until(b"I OK")
    finally:
        for idler in idlers:
            idler.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_imaps_lists_and_fetches(big: testserver.TestServer, tmp_path: Path) -> None:
    assert b"A OK" in command(big.imap_port, b"A APPEND INBOX {%d+}\r\n%s\r\n" % (len(MSG), MSG))
    r = subprocess.run(
        ["curl", "-sS", "-k", "--max-time", "20", "-u", f"ida:{PASSWORD}",
         f"imaps://127.0.0.1:{big.imaps_port}/INBOX;MAILINDEX=1"],
        capture_output=True, check=False,
    )
    assert r.returncode == 0, r.stderr
    assert b"Subject: push" in r.stdout
    r = subprocess.run(
        ["curl", "-sS", "-k", "--max-time", "20", "-u", f"ida:{PASSWORD}",
         f"imap://127.0.0.1:{big.imap_port}/", "--ssl-reqd"],
        capture_output=True, check=False,
    )
    assert r.returncode == 0, r.stderr          # STARTTLS, then LIST
    assert b"INBOX" in r.stdout


def test_tls_large_transfer_both_ways(big: testserver.TestServer) -> None:
    """Partial reads and writes in the TLS layer: a literal far bigger than
    a TLS record goes in, and comes back out intact."""
    body = b"Subject: big\r\n\r\n" + b"".join(b"%07d abcdefghijklmnopqrstuvwxyz\r\n" % i
                                               for i in range(40000))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", big.imaps_port),
                                                  timeout=30)) as s:
        s.sendall(b'L LOGIN ida "%s"\r\nC CREATE Big\r\n' % PASSWORD.encode()
                  + b"A APPEND Big {%d+}\r\n" % len(body) + body
                  + b"\r\nS SELECT Big\r\nF FETCH 1 BODY.PEEK[]\r\nQ LOGOUT\r\n")
        out = b""
        while b"Q OK" not in out:
            data = s.recv(65536)
            if not data:
                break
            out += data
    assert b"A OK" in out and b"F OK" in out
    assert b"{%d}\r\n" % len(body) + body in out
