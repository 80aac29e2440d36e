"""The server layer against the real server process (tools/testserver.py):
STARTTLS and LOGINDISABLED (RFC 9051 §6.2.1, §6.2.3, §11.1), the STARTTLS
command-injection defence (RFC 9051 §11.1, RFC 3207 §6), implicit TLS on the
imaps port with TLS 1.2 as the floor (RFC 8314, RFC 8996), SIGTERM graceful
shutdown, SIGHUP certificate reload, connection caps, the pre-auth timeout
and literal limit, and the self-signed certificate of a first start.

Every test drives raw sockets (or imaplib) against a server subprocess; none
asserts on timing. Waiting for an asynchronous server event (a reload, a
shutdown) polls the server's log or a connection until a generous deadline.
"""

from __future__ import annotations

import base64
import hashlib
import imaplib
import re
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testserver
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailbag.tls import generate_self_signed

WAIT = 20.0  # seconds: a deadline for events, never an assertion about speed


class Client:
    """A line-oriented IMAP client on a raw socket, able to switch to TLS
    after STARTTLS (so that the test sees every byte the server sends)."""

    def __init__(self, port: int, *, tls: bool = False, source: str | None = None,
                 timeout: float = WAIT) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        if source is not None:
            sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        self.sock: socket.socket = sock
        if tls:
            self.sock = testserver.client_tls().wrap_socket(sock)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            self.buf += self.recv_some()
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def tagged(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the tagged response for ``tag``."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.tagged(tag)

    def greeting(self) -> bytes:
        return self.readline()

    def read_to_eof(self) -> bytes:
        """Everything until the server closes (ConnectionError counts as closed)."""
        data, self.buf = self.buf, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionError, ssl.SSLError):
                return data
            if not chunk:
                return data
            data += chunk

    def starttls(self, tag: bytes = b"T") -> ssl.SSLSocket:
        assert self.command(tag, b"STARTTLS")[-1].startswith(tag + b" OK")
        # Nothing may follow the tagged OK in clear text.
        assert self.buf == b""
        tls = testserver.client_tls().wrap_socket(self.sock)
        self.sock = tls
        return tls


def capabilities(c: Client, tag: bytes = b"C") -> set[str]:
    lines = c.command(tag, b"CAPABILITY")
    assert lines[-1].startswith(tag + b" OK")
    caps = [line for line in lines if line.upper().startswith(b"* CAPABILITY ")]
    assert len(caps) == 1, lines
    return set(caps[0].decode().split()[2:])


def wait_for_log(srv: testserver.TestServer, pattern: str, after: int = 0) -> re.Match[str]:
    """The first match of ``pattern`` in the server log past offset ``after``."""
    deadline = time.monotonic() + WAIT
    while True:
        m = re.search(pattern, srv.log_text()[after:])
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never logged:\n{srv.log_text()}")
        time.sleep(0.05)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pem_fingerprint(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


def peer_fingerprint(sock: ssl.SSLSocket) -> str:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(der)


def started(srv: testserver.TestServer, users: dict[str, str]) -> testserver.TestServer:
    srv.write_config()
    for name, password in users.items():
        srv.add_user(name, password)
    srv.start()
    return srv


def finish(srv: testserver.TestServer) -> None:
    srv.stop()
    log = srv.log_text()
    shutil.rmtree(srv.data_dir, ignore_errors=True)
    assert "Traceback" not in log, log


# --------------------------------------------------------------- strict server
@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testserver.TestServer]:
    """Loopback treated like any other network: TLS is required to log in.
    Also a tiny pre-auth literal limit."""
    srv = testserver.TestServer(
        tmp_path_factory.mktemp("strict"),
        top_config="secure_loopback = false\n",
        extra_config="[limits]\npreauth_max_literal = 64\n",
    )
    started(srv, {"carol": "carol-pw"})
    try:
        yield srv
    finally:
        finish(srv)


def test_first_start_generates_a_certificate_and_logs_its_fingerprint(
        strict: testserver.TestServer) -> None:
    cert = strict.data_dir / "tls" / "cert.pem"
    key = strict.data_dir / "tls" / "key.pem"
    assert cert.is_file() and key.is_file()
    assert key.stat().st_mode & 0o077 == 0
    fp = pem_fingerprint(cert)
    assert re.search(rf"tls-certificate .*sha256={fp}\b", strict.log_text())
    # The one logged is the one served, on both ports.
    with Client(strict.imaps_port, tls=True) as c:
        assert isinstance(c.sock, ssl.SSLSocket)
        assert peer_fingerprint(c.sock) == fp
    with Client(strict.imap_port) as c:
        c.greeting()
        assert peer_fingerprint(c.starttls()) == fp


def test_logindisabled_until_starttls(strict: testserver.TestServer) -> None:
    with Client(strict.imap_port) as c:
        greeting = c.greeting()
        assert greeting.startswith(b"* OK") and b"LOGINDISABLED" in greeting
        caps = capabilities(c)
        assert {"LOGINDISABLED", "STARTTLS"} <= caps
        assert not any(cap.startswith("AUTH=") for cap in caps)

        r = c.command(b"L1", b"LOGIN carol carol-pw")
        assert re.match(rb"L1 NO \[PRIVACYREQUIRED\] ", r[-1]), r
        plain = base64.b64encode(b"\0carol\0carol-pw")
        r = c.command(b"A1", b"AUTHENTICATE PLAIN " + plain)
        assert re.match(rb"A1 NO \[PRIVACYREQUIRED\] ", r[-1]), r
        # Without SASL-IR the refusal comes before any challenge: the
        # password is never asked for in clear text.
        r = c.command(b"A2", b"AUTHENTICATE PLAIN")
        assert re.match(rb"A2 NO \[PRIVACYREQUIRED\] ", r[-1]), r
        # Still not authenticated.
        assert re.match(rb"S1 BAD ", c.command(b"S1", b"SELECT INBOX")[-1])

        c.starttls()
        caps = capabilities(c, b"C2")
        assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps
        assert "AUTH=PLAIN" in caps
        r = c.command(b"A3", b"AUTHENTICATE PLAIN " + plain)
        assert r[-1].startswith(b"A3 OK"), r
        assert c.command(b"S2", b"SELECT INBOX")[-1].startswith(b"S2 OK")
        assert c.command(b"Z", b"LOGOUT")[-1].startswith(b"Z OK")


def test_login_after_starttls_with_imaplib(strict: testserver.TestServer) -> None:
    c = imaplib.IMAP4("127.0.0.1", strict.imap_port, timeout=WAIT)
    try:
        assert "LOGINDISABLED" in c.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            c.login("carol", "carol-pw")
        c.starttls(testserver.client_tls())
        assert "LOGINDISABLED" not in c.capabilities
        assert c.login("carol", "carol-pw")[0] == "OK"
        assert c.select("INBOX")[0] == "OK"
    finally:
        c.logout()


def test_starttls_twice_and_on_imaps_is_refused(strict: testserver.TestServer) -> None:
    with Client(strict.imap_port) as c:
        c.greeting()
        c.starttls()
        assert re.match(rb"T2 BAD ", c.command(b"T2", b"STARTTLS")[-1])
    with Client(strict.imaps_port, tls=True) as c:
        greeting = c.greeting()
        assert b"LOGINDISABLED" not in greeting and b"STARTTLS" not in greeting
        assert "STARTTLS" not in capabilities(c)
        assert re.match(rb"T BAD ", c.command(b"T", b"STARTTLS")[-1])


def test_commands_pipelined_after_starttls_are_discarded(strict: testserver.TestServer) -> None:
    """RFC 9051 §11.1: what follows STARTTLS in the same packet was sent in
    clear text (maybe injected by a man in the middle) and must not run."""
    with Client(strict.imap_port) as c:
        c.greeting()
        c.send(b"T STARTTLS\r\nX1 NOOP\r\nX2 CAPABILITY\r\n"
               b"X3 LOGIN carol carol-pw\r\nX4 SELECT INBOX\r\n")
        line = c.readline()
        assert line.startswith(b"T OK"), line
        assert c.buf == b""
        c.sock = testserver.client_tls().wrap_socket(c.sock)
        lines = c.command(b"N", b"NOOP")
        assert lines == [lines[-1]] and lines[-1].startswith(b"N OK"), lines
        # The injected LOGIN did not log the connection in.
        assert re.match(rb"S BAD ", c.command(b"S", b"SELECT INBOX")[-1])
        assert "LOGINDISABLED" not in capabilities(c)


def test_large_injection_after_starttls_is_not_executed(strict: testserver.TestServer) -> None:
    """The same, with more injected bytes than one socket read takes: none of
    them may be taken for commands sent over TLS."""
    injected = b"".join(b"X%d NOOP\r\n" % i for i in range(12000))  # ~120 KB
    with Client(strict.imap_port) as c:
        c.greeting()
        c.send(b"T STARTTLS\r\n" + injected + b"X LOGIN carol carol-pw\r\n")
        line = c.readline()
        assert line.startswith(b"T OK"), line
        assert c.buf == b""
        try:
            c.sock = testserver.client_tls().wrap_socket(c.sock)
            lines = c.command(b"N", b"NOOP")
        except (ssl.SSLError, ConnectionError, TimeoutError):
            return  # refusing the handshake over garbage is fine too
        assert lines == [lines[-1]] and lines[-1].startswith(b"N OK"), lines[:5]
        assert re.match(rb"S BAD ", c.command(b"S", b"SELECT INBOX")[-1])


def test_preauth_literal_limit_refuses_without_continuation(
        strict: testserver.TestServer) -> None:
    with Client(strict.imap_port) as c:
        c.greeting()
        c.send(b"L LOGIN carol {100000}\r\n")
        line = c.readline()
        # No "+": the client is told before it sends a byte of the literal.
        assert re.match(rb"L (NO|BAD) \[(TOOBIG|LIMIT)\] ", line), line
        # The connection is still usable and in sync.
        assert c.command(b"N", b"NOOP")[-1].startswith(b"N OK")

        # A non-synchronizing literal is counted off, never buffered or run.
        c.send(b"M LOGIN carol {100000+}\r\n" + b"x" * 100000 + b"\r\n")
        line = c.readline()
        assert re.match(rb"M (NO|BAD) \[(TOOBIG|LIMIT)\] ", line), line
        assert c.command(b"N2", b"NOOP")[-1].startswith(b"N2 OK")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused(strict: testserver.TestServer) -> None:
    if not getattr(ssl, "HAS_TLSv1_1", False):
        pytest.skip("this OpenSSL cannot speak TLS 1.1")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL refuses to configure TLS 1.1")
    if not _tls11_possible(old, strict.data_dir / "tls"):
        pytest.skip("this OpenSSL cannot complete a TLS 1.1 handshake")
    for port, starttls in ((strict.imaps_port, False), (strict.imap_port, True)):
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        try:
            if starttls:
                sock.recv(1000)
                sock.sendall(b"T STARTTLS\r\n")
                assert sock.recv(1000).startswith(b"T OK")
            with pytest.raises((ssl.SSLError, ConnectionError)):
                old.wrap_socket(sock).do_handshake()
        finally:
            sock.close()
    # A modern client on the same port is fine.
    with Client(strict.imaps_port, tls=True) as c:
        assert c.greeting().startswith(b"* OK")
        assert isinstance(c.sock, ssl.SSLSocket)
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")


def _tls11_possible(client: ssl.SSLContext, tls_dir: Path) -> bool:
    """Whether this OpenSSL completes a TLS 1.1 handshake with a server that
    allows it, in memory: so that the refusal above is the server's doing."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server.minimum_version = ssl.TLSVersion.TLSv1
        server.maximum_version = ssl.TLSVersion.TLSv1_1
        server.set_ciphers("DEFAULT:@SECLEVEL=0")
        server.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
    except (ValueError, ssl.SSLError):
        return False
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for obj, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                obj.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return False
            peer_in.write(out.read())
        if done == 2:
            return c.version() == "TLSv1.1"
    return False


# ------------------------------------------------------------------ shutdown
@pytest.fixture
def own(tmp_path: Path) -> Iterator[testserver.TestServer]:
    """A server of the test's own, for tests that stop or signal it."""
    srv = started(testserver.TestServer(tmp_path / "data"), {"dave": "dave-pw"})
    try:
        yield srv
    finally:
        finish(srv)


def logged_in(port: int, tls: bool = False) -> Client:
    c = Client(port, tls=tls)
    assert c.greeting().startswith(b"* OK")
    assert c.command(b"L", b"LOGIN dave dave-pw")[-1].startswith(b"L OK")
    return c


def refused_or_bye(port: int) -> None:
    """A connection attempt while the server shuts down."""
    try:
        c = Client(port)
    except ConnectionRefusedError:
        return
    with c:
        data = c.read_to_eof()
    assert data == b"" or data.startswith(b"* BYE"), data


def test_sigterm_lets_an_append_in_flight_finish(own: testserver.TestServer) -> None:
    body = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * (4 * 65536) + b"\r\n"
    half = len(body) // 2
    appender = logged_in(own.imap_port)
    idle = logged_in(own.imap_port)
    appender.send(b"A APPEND INBOX {%d}\r\n" % len(body))
    assert appender.readline().startswith(b"+")
    appender.send(body[:half])

    assert own.proc is not None
    own.proc.send_signal(signal.SIGTERM)
    # The idle session is told at once: that is how we know shutdown began.
    assert idle.read_to_eof().startswith(b"* BYE")
    idle.close()
    refused_or_bye(own.imap_port)

    appender.send(body[half:] + b"\r\n")
    reply = appender.tagged(b"A")
    assert re.match(rb"A OK \[APPENDUID \d+ 1\]", reply[-1]), reply
    rest = appender.read_to_eof()
    assert rest.startswith(b"* BYE"), rest
    appender.close()
    assert own.proc.wait(WAIT) == 0
    assert own.stop() == 0
    # Told as soon as its APPEND was done, not cut off after the grace period.
    assert "shutdown-forced" not in own.log_text()

    # What was acknowledged is there after a restart.
    own.start()
    with logged_in(own.imap_port) as c:
        c.command(b"S", b"SELECT INBOX")
        r = c.command(b"F", b"UID FETCH 1 (RFC822.SIZE)")
        assert b"RFC822.SIZE %d" % len(body) in b"".join(r), r


def test_sigterm_bye_between_commands_and_exit_status(own: testserver.TestServer) -> None:
    clients = [logged_in(own.imap_port), logged_in(own.imaps_port, tls=True)]
    idler = logged_in(own.imap_port)
    idler.command(b"S", b"SELECT INBOX")
    idler.send(b"I IDLE\r\n")
    assert idler.readline().startswith(b"+")
    clients.append(idler)
    with Client(own.imap_port) as fresh:   # not logged in
        fresh.greeting()
        assert own.proc is not None
        own.proc.send_signal(signal.SIGTERM)
        for c in [*clients, fresh]:
            assert c.read_to_eof().startswith(b"* BYE"), c
            c.close()
    assert own.proc.wait(WAIT) == 0
    assert "shutdown-forced" not in own.log_text()


# -------------------------------------------------------------------- SIGHUP
def make_cert(directory: Path, host: str) -> tuple[Path, Path]:
    cert, key = directory / f"{host}.pem", directory / f"{host}.key"
    generate_self_signed(cert, key, hostname=host)
    return cert, key


def install(src: tuple[Path, Path], dst: tuple[Path, Path]) -> None:
    """Replace the live files the way certbot-style renewals do: atomically."""
    for s, d in zip(src, dst, strict=True):
        tmp = d.with_name(d.name + ".new")
        tmp.write_bytes(s.read_bytes())
        tmp.replace(d)


def served_fingerprints(srv: testserver.TestServer) -> tuple[str, str]:
    """The certificate on the imaps port and after STARTTLS on the imap port."""
    with Client(srv.imaps_port, tls=True) as c:
        assert c.greeting().startswith(b"* OK")
        assert isinstance(c.sock, ssl.SSLSocket)
        implicit = peer_fingerprint(c.sock)
    with Client(srv.imap_port) as c:
        c.greeting()
        upgraded = peer_fingerprint(c.starttls())
    return implicit, upgraded


def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    live = make_cert(certs, "live.example.test")
    renewed = make_cert(certs, "renewed.example.test")
    srv = testserver.TestServer(
        tmp_path / "data",
        extra_config=f'[tls]\ncert_file = "{live[0]}"\nkey_file = "{live[1]}"\n',
    )
    started(srv, {"dave": "dave-pw"})
    try:
        first = pem_fingerprint(live[0])
        assert served_fingerprints(srv) == (first, first)
        assert not (srv.data_dir / "tls").exists()   # configured files: nothing generated
        before = logged_in(srv.imaps_port, tls=True)

        install(renewed, live)
        second = pem_fingerprint(renewed[0])
        assert second != first
        mark = len(srv.log_text())
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGHUP)
        wait_for_log(srv, rf"tls-reloaded sha256={second}\b", mark)
        assert served_fingerprints(srv) == (second, second)
        # A connection made before the reload carries on.
        assert before.command(b"N", b"NOOP")[-1].startswith(b"N OK")
        before.close()

        # A broken renewal is refused; the certificate in use stays: a file
        # that is no certificate, and a certificate without its own key.
        third = make_cert(certs, "third.example.test")
        for broken in ("not a certificate\n", third[0].read_text()):
            live[0].write_text(broken)
            mark = len(srv.log_text())
            srv.proc.send_signal(signal.SIGHUP)
            wait_for_log(srv, r"tls-reload-failed ", mark)
            assert served_fingerprints(srv) == (second, second)
        assert srv.proc.poll() is None
    finally:
        finish(srv)


# ------------------------------------------------------- caps and timeouts
def bye_reason(c: Client) -> bytes:
    data = c.read_to_eof()
    assert re.match(rb"\* BYE \[UNAVAILABLE\] \S", data), data
    return data


def admitted(port: int, source: str) -> Client:
    """A connection that got its greeting. A BYE is retried until a deadline:
    a session that has just ended may not have been counted off yet."""
    deadline = time.monotonic() + WAIT
    while True:
        c = Client(port, source=source)
        greeting = c.greeting()
        if greeting.startswith(b"* OK"):
            return c
        c.close()
        assert greeting.startswith(b"* BYE"), greeting
        assert time.monotonic() < deadline, "never admitted"
        time.sleep(0.05)


def test_connection_caps(tmp_path: Path) -> None:
    srv = testserver.TestServer(
        tmp_path / "data",
        extra_config="[limits]\nmax_connections = 4\nmax_connections_per_ip = 2\n",
    )
    started(srv, {"dave": "dave-pw"})
    open_: list[Client] = []
    try:
        open_ += [admitted(srv.imap_port, "127.0.0.1"), admitted(srv.imap_port, "127.0.0.1")]
        # A third from the same address is shed, on either port.
        with Client(srv.imap_port, source="127.0.0.1") as c:
            per_ip = bye_reason(c)
        with socket.create_connection(("127.0.0.1", srv.imaps_port), timeout=WAIT) as raw:
            tls = testserver.client_tls().wrap_socket(raw)
            assert tls.recv(1000).startswith(b"* BYE [UNAVAILABLE]")
        # Other addresses may still come, up to the total.
        open_ += [admitted(srv.imap_port, "127.0.0.2"), admitted(srv.imap_port, "127.0.0.2")]
        with Client(srv.imap_port, source="127.0.0.3") as c:
            total = bye_reason(c)
        assert per_ip != total   # the reason says which cap it was
        # Those admitted work; a freed slot is given out again.
        c = open_.pop(0)
        assert c.command(b"L", b"LOGIN dave dave-pw")[-1].startswith(b"L OK")
        assert c.command(b"Z", b"LOGOUT")[-1].startswith(b"Z OK")
        c.close()
        open_.append(admitted(srv.imap_port, "127.0.0.3"))
        assert re.search(r"connection-refused rip=127\.0\.0\.1 .*reason=", srv.log_text())
    finally:
        for c in open_:
            c.close()
        finish(srv)


def test_preauth_timeout_closes_an_idle_connection(tmp_path: Path) -> None:
    srv = testserver.TestServer(tmp_path / "data",
                                extra_config="[limits]\npreauth_timeout = 0.5\n")
    started(srv, {})
    try:
        with Client(srv.imap_port) as c:
            assert c.greeting().startswith(b"* OK")
            data = c.read_to_eof()   # the server, not the client, ends it
            assert data.startswith(b"* BYE"), data
        with Client(srv.imap_port) as c:
            c.greeting()
            c.send(b"A1 CAPA")   # half a command does not keep it open either
            assert c.read_to_eof().startswith(b"* BYE")
    finally:
        finish(srv)


# ------------------------------------------------------ tools/testserver.py
def test_testserver_config_overrides(tmp_path: Path) -> None:
    from mailbag.config import Argon2Params, load_config

    srv = testserver.TestServer(tmp_path / "a")
    srv.write_config()
    assert load_config(srv.config_path).argon2 == Argon2Params(**testserver.FAST_ARGON2)
    # An [argon2] table in extra_config replaces the default one.
    srv = testserver.TestServer(
        tmp_path / "b", top_config="secure_loopback = false",
        extra_config="[argon2]\ntime_cost = 2\nmemory_cost = 64\nparallelism = 1\n"
                     "[limits]\nmax_connections = 7\n",
    )
    srv.write_config()
    config = load_config(srv.config_path)
    assert config.argon2 == Argon2Params(2, 64, 1)
    assert config.limits.max_connections == 7 and config.secure_loopback is False
    srv = testserver.TestServer(tmp_path / "c", argon2={"time_cost": 4, "memory_cost": 128,
                                                        "parallelism": 2})
    srv.write_config()
    assert load_config(srv.config_path).argon2 == Argon2Params(4, 128, 2)
    srv = testserver.TestServer(tmp_path / "d", argon2=None)   # shipped defaults
    srv.write_config()
    assert load_config(srv.config_path).argon2 == Argon2Params()
