"""The ``tls-exporter`` channel binding value (RFC 9266 §2): 32 bytes from
the TLS exporter (RFC 8446 §7.5 / RFC 5705) with label
"EXPORTER-Channel-Binding" and no context.

Python's ssl module has no exporter API (3.11-3.13 offer only
``get_channel_binding("tls-unique")``, which RFC 9266 retires for TLS 1.3),
and asyncio's TLS cannot be swapped for pyOpenSSL. So this calls OpenSSL's
``SSL_export_keying_material`` through ctypes, on the ``SSL*`` that CPython's
``_ssl._SSLSocket`` object wraps. That pointer is read from the object's C
struct (``PyObject_HEAD; PyObject *Socket; SSL *ssl; ...``, unchanged from
3.7 to 3.14), which is only done where that layout is known: CPython, a
release build with the GIL, the struct size as expected. On first use a
self-test runs a TLS handshake in memory and checks that both ends export
the same value and that OpenSSL reports the same protocol version as Python
for that pointer; if anything is off the value is None and -PLUS is simply
not offered.

RFC 9266 §3: with TLS 1.2 the exporter is only safe with the extended master
secret (RFC 7627); TLS 1.3 always qualifies. Other connections get None.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Any, Final

from mailbag.log import log_event

log = logging.getLogger("mailbag.auth")

LABEL: Final = b"EXPORTER-Channel-Binding"
LENGTH: Final = 32
_CTRL_GET_EXTMS_SUPPORT: Final = 122      # openssl/ssl.h, 1.1.0 to 3.x

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _layout_known() -> bool:
    if sys.implementation.name != "cpython" or not (3, 7) <= sys.version_info[:2] <= (3, 14):
        return False
    if hasattr(sys, "getobjects"):           # Py_TRACE_REFS widens PyObject_HEAD
        return False
    return not sysconfig.get_config_var("Py_GIL_DISABLED")


def _load() -> Any | None:
    import _ssl

    try:
        # dlopen of the extension resolves symbols in the libssl it links,
        # i.e. the very library that owns the SSL objects.
        lib = ctypes.CDLL(_ssl.__file__)
        export = lib.SSL_export_keying_material
        version = lib.SSL_get_version
        ctrl = lib.SSL_ctrl
    except (OSError, AttributeError):
        return None
    export.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
        ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
    ]
    export.restype = ctypes.c_int
    version.argtypes = [ctypes.c_void_p]
    version.restype = ctypes.c_char_p
    # SSL_get_extms_support(s) is a macro: SSL_ctrl(s, SSL_CTRL_GET_EXTMS_SUPPORT, 0, NULL).
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    ctrl.restype = ctypes.c_long
    return lib


def _ssl_pointer(obj: ssl.SSLObject | ssl.SSLSocket) -> int | None:
    inner = getattr(obj, "_sslobj", None)
    if inner is None or type(inner).__name__ != "_SSLSocket":
        return None
    word = ctypes.sizeof(ctypes.c_void_p)
    ptr = ctypes.c_void_p.from_address(id(inner) + 3 * word).value
    return ptr or None


def _raw_export(lib: Any, obj: ssl.SSLObject | ssl.SSLSocket) -> bytes | None:
    ptr = _ssl_pointer(obj)
    if ptr is None:
        return None
    # Cross-check the pointer before trusting it: OpenSSL must name the
    # same protocol version that Python reports for this connection.
    if lib.SSL_get_version(ptr).decode("ascii", "replace") != obj.version():
        return None
    if obj.version() != "TLSv1.3" and lib.SSL_ctrl(ptr, _CTRL_GET_EXTMS_SUPPORT, 0, None) != 1:
        return None
    buf = ctypes.create_string_buffer(LENGTH)
    if lib.SSL_export_keying_material(ptr, buf, LENGTH, LABEL, len(LABEL), None, 0, 0) != 1:
        return None
    return buf.raw


def _self_test(lib: Any) -> bool:
    """Handshake in memory with a throwaway certificate; both ends must agree."""
    from mailbag.tls import generate_self_signed  # lazily: cryptography is heavy

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        generate_self_signed(cert, key)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    for _ in range(8):
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    a, b = _raw_export(lib, server), _raw_export(lib, client)
    return a is not None and a == b


def _library() -> Any | None:
    with _lock:
        if "lib" not in _state:
            lib = None
            reason = "unsupported-python"
            if hasattr(ssl.SSLObject, "export_keying_material"):
                lib, reason = "native", ""
            elif _layout_known():
                lib = _load()
                reason = "no-libssl-symbol" if lib is None else ""
                try:
                    if lib is not None and not _self_test(lib):
                        lib, reason = None, "self-test-failed"
                except Exception as e:  # noqa: BLE001 - any failure: no -PLUS
                    lib, reason = None, f"self-test-error-{type(e).__name__}"
            if lib is None:
                log_event(log, "tls-exporter-unavailable", reason=reason)
            _state["lib"] = lib
        return _state["lib"]


def available() -> bool:
    """Whether tls-exporter values can be computed in this process."""
    return _library() is not None


def tls_exporter(obj: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The RFC 9266 channel binding value of a TLS connection, or None."""
    if obj is None:
        return None
    lib = _library()
    if lib is None:
        return None
    if lib == "native":  # pragma: no cover - a future Python with the API
        try:
            value: bytes = obj.export_keying_material(LABEL, LENGTH, None)  # type: ignore[union-attr]
        except (ssl.SSLError, ValueError):
            return None
        return value
    try:
        return _raw_export(lib, obj)
    except (ValueError, OSError):
        return None
