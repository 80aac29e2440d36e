"""tls-exporter (RFC 9266) values from ssl objects via OpenSSL."""

from __future__ import annotations

import ssl
from pathlib import Path

from mailbag.auth import channel_binding
from mailbag.tls import generate_self_signed


def handshake(tmp_path: Path) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    generate_self_signed(cert, key)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    client = cctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    for _ in range(8):
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    return server, client


def test_both_ends_agree_and_connections_differ(tmp_path: Path) -> None:
    assert channel_binding.available(), "CPython with OpenSSL: the exporter must work here"
    s1, c1 = handshake(tmp_path)
    s2, _ = handshake(tmp_path)
    v = channel_binding.tls_exporter(s1)
    assert v is not None and len(v) == 32
    assert v == channel_binding.tls_exporter(c1)
    assert v != channel_binding.tls_exporter(s2)


def test_no_tls_no_value() -> None:
    assert channel_binding.tls_exporter(None) is None
