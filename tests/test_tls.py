import asyncio
import hashlib
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailbag.tls import (
    TlsError,
    ensure_certificate,
    format_fingerprint,
    generate_self_signed,
    server_context,
)


def test_generates_once_and_reuses(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, None, None)
    assert first.cert_path == tmp_path / "tls" / "cert.pem"
    assert first.key_path == tmp_path / "tls" / "key.pem"
    assert len(first.fingerprint_sha256) == 64
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    again = ensure_certificate(tmp_path, None, None)
    assert again == first
    cert_path, key_path, fingerprint = again  # a tuple, as callers unpack it
    assert fingerprint == first.fingerprint_sha256


def test_certificate_contents(tmp_path: Path) -> None:
    c, k = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(c, k, hostname="mail.example.test")
    cert = x509.load_pem_x509_certificate(c.read_bytes())
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == "mail.example.test"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "mail.example.test"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days >= 3650
    der = cert.public_bytes(serialization.Encoding.DER)
    assert ensure_certificate(tmp_path, c, k).fingerprint_sha256 == hashlib.sha256(der).hexdigest()


def test_configured_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match="no such file"):
        ensure_certificate(tmp_path, tmp_path / "c.pem", tmp_path / "k.pem")
    with pytest.raises(TlsError, match="both"):
        ensure_certificate(tmp_path, tmp_path / "c.pem", None)
    (tmp_path / "bad.pem").write_text("not a cert")
    (tmp_path / "k.pem").write_text("x")
    with pytest.raises(TlsError, match="not a PEM certificate"):
        ensure_certificate(tmp_path, tmp_path / "bad.pem", tmp_path / "k.pem")


def test_server_context_rejects_mismatched_key(tmp_path: Path) -> None:
    generate_self_signed(tmp_path / "a.pem", tmp_path / "a.key")
    generate_self_signed(tmp_path / "b.pem", tmp_path / "b.key")
    with pytest.raises(TlsError):
        server_context(tmp_path / "a.pem", tmp_path / "b.key")


def test_format_fingerprint() -> None:
    assert format_fingerprint("ab01ff") == "AB:01:FF"


async def test_loopback_handshake_with_pinned_certificate(tmp_path: Path) -> None:
    files = ensure_certificate(tmp_path, None, None)
    ctx = server_context(files.cert_path, files.key_path)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK hello\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=str(files.cert_path))
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        assert await reader.readline() == b"* OK hello\r\n"
        tls = writer.get_extra_info("ssl_object")
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        der = tls.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == files.fingerprint_sha256
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
async def test_tls_1_1_is_refused(tmp_path: Path) -> None:
    files = ensure_certificate(tmp_path, None, None)
    ctx = server_context(files.cert_path, files.key_path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        client.minimum_version = ssl.TLSVersion.TLSv1_1
        client.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=client)
    finally:
        server.close()
        await server.wait_closed()
