"""mailbag: a mail-access server."""

__version__ = "0.1.0"
