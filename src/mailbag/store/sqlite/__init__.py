"""The embedded storage backend: SQLite in WAL mode plus a blob directory."""

from mailbag.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
