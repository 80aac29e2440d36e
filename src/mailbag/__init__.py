"""mailbag: a mail-access server."""
