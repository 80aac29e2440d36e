"""TLS for IMAPS (RFC 8314 implicit TLS) and STARTTLS (RFC 9051 §6.2.1).

When no certificate is configured, a self-signed one (EC P-256, 10 years,
SubjectAltName localhost / 127.0.0.1 / ::1 / the host name) is generated once
under ``data_dir/tls/`` so that a fresh install speaks TLS at once; its
SHA-256 fingerprint is printed so that users can pin it in their clients.
Contexts require TLS 1.2 or newer (RFC 8996, RFC 9325). ``unread_input``
serves the STARTTLS/STLS buffering defence (RFC 9051 §11.1, RFC 2595 §4,
RFC 3207 §6).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GENERATED_CERT = "cert.pem"
GENERATED_KEY = "key.pem"
VALIDITY = datetime.timedelta(days=3650)


class TlsError(Exception):
    """A certificate or key that cannot be used; the message names the file."""


class CertificateFiles(NamedTuple):
    cert_path: Path
    key_path: Path
    fingerprint_sha256: str      # lower-case hex of SHA-256 over the DER certificate


def ensure_certificate(
    data_dir: Path, cert_file: Path | None, key_file: Path | None
) -> CertificateFiles:
    """The configured certificate, or the one under data_dir/tls/ (generated
    on first use)."""
    if (cert_file is None) != (key_file is None):
        raise TlsError("set both a certificate file and a key file, or neither")
    if cert_file is None or key_file is None:
        tls_dir = data_dir / "tls"
        cert_file, key_file = tls_dir / GENERATED_CERT, tls_dir / GENERATED_KEY
        if not cert_file.exists() and not key_file.exists():
            generate_self_signed(cert_file, key_file)
    for path in (cert_file, key_file):
        if not path.is_file():
            raise TlsError(f"{path}: no such file")
    return CertificateFiles(cert_file, key_file, fingerprint_of(cert_file))


def fingerprint_of(cert_path: Path) -> str:
    """SHA-256 fingerprint (hex) of the first certificate in a PEM file."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as e:
        raise TlsError(f"{cert_path}: not a PEM certificate ({e})") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def format_fingerprint(hex_digest: str) -> str:
    """``AB:CD:...``, the way browsers and openssl show fingerprints."""
    return ":".join(hex_digest[i : i + 2] for i in range(0, len(hex_digest), 2)).upper()


def generate_self_signed(cert_path: Path, key_path: Path, hostname: str | None = None) -> None:
    host = hostname or socket.gethostname() or "localhost"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    san: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    if host != "localhost":
        try:
            san.append(x509.DNSName(host))
        except ValueError:
            pass  # a host name that is not a valid DNS name stays out of the SAN
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little slack for clients whose clock is slightly behind.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # Key first, so that a crash never leaves a certificate without its key.
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # Created with its final mode: the private key is never world-readable,
    # not even for an instant.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"{cert_path} / {key_path}: cannot load certificate and key ({e})") from None
    return ctx


def unread_input(reader: asyncio.StreamReader | object) -> bytearray | None:
    """The bytes ``reader`` has received from the socket but not handed out
    yet, to be cleared before a STARTTLS/STLS upgrade; None when this asyncio
    keeps them elsewhere (then refuse the upgrade).

    A session's parser drops what it holds after STARTTLS, but one read()
    takes at most what was asked for: a client (or a man in the middle) that
    sends more clear text than that after STARTTLS leaves the rest here, and
    it would come out of the reader after the handshake as if it had been
    sent over TLS. asyncio has no public call to discard it.
    """
    buffer = getattr(reader, "_buffer", None)
    return buffer if isinstance(buffer, bytearray) else None
