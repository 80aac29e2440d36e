"""Content-addressed message blobs on disk: ``blobs/ab/cdef…`` (SHA-256 hex),
zstd-compressed (DESIGN.md rule 5).

A blob is written to a temporary file in its final directory, fsynced and
renamed, and the directory is fsynced, so a blob that ``put`` returned for is
durable and a crash never leaves a half-written blob under a real name. A blob
that already exists is not rewritten: COPY and repeated deliveries share one
file. Deleting is the caller's business (the backend decides when the last
reference went away); ``sweep`` removes left-over temporary files.

All methods block; call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import zstandard

_BLOB_ID = re.compile(r"[0-9a-f]{64}\Z")
_TMP_PREFIX = ".tmp-"


def blob_id_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def is_blob_id(text: str) -> bool:
    return _BLOB_ID.match(text) is not None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path, level: int = 3) -> None:
        self.root = root
        self._level = level
        # zstd (de)compressor objects must not be shared between threads.
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        c: zstandard.ZstdCompressor | None = getattr(self._local, "c", None)
        if c is None:
            c = zstandard.ZstdCompressor(level=self._level, write_content_size=True)
            self._local.c = c
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d: zstandard.ZstdDecompressor | None = getattr(self._local, "d", None)
        if d is None:
            d = zstandard.ZstdDecompressor()
            self._local.d = d
        return d

    def path(self, blob_id: str) -> Path:
        if not is_blob_id(blob_id):
            raise ValueError(f"not a blob id: {blob_id!r}")
        return self.root / blob_id[:2] / blob_id[2:]

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).exists()

    def compress(self, raw: bytes) -> bytes:
        return self._compressor().compress(raw)

    def decompress(self, data: bytes) -> bytes:
        return self._decompressor().decompress(data)

    def put(self, blob_id: str, raw: bytes, compressed: bytes | None = None) -> bool:
        """Store ``raw`` durably under ``blob_id``; False if it was already there."""
        final = self.path(blob_id)
        if final.exists():
            return False
        directory = final.parent
        if not directory.exists():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.root)
        tmp = directory / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        data = compressed if compressed is not None else self.compress(raw)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(directory)
        return True

    def get(self, blob_id: str) -> bytes:
        """The raw message; FileNotFoundError if there is no such blob."""
        data = self.path(blob_id).read_bytes()
        return self._decompressor().decompress(data)

    def delete(self, blob_id: str) -> bool:
        try:
            self.path(blob_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def ids(self) -> Iterator[str]:
        """Every stored blob id (a directory walk; for sweeps, not hot paths)."""
        if not self.root.exists():
            return
        for directory in self.root.iterdir():
            if len(directory.name) != 2 or not directory.is_dir():
                continue
            for f in directory.iterdir():
                blob_id = directory.name + f.name
                if is_blob_id(blob_id):
                    yield blob_id

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by a crash during ``put``."""
        if not self.root.exists():
            return 0
        removed = 0
        cutoff = time.time() - older_than
        for f in self.root.glob(f"*/{_TMP_PREFIX}*"):
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
