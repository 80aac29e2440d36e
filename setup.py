"""The one thing pyproject.toml cannot say without an experimental table:
mailbag.imap._sendmany, a small optional C extension (imap/fanout.py).
Optional: without a C compiler and Python's headers the install goes on and
the IDLE push writes in the event loop's thread."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mailbag.imap._sendmany",
                             sources=["src/mailbag/imap/_sendmany.c"],
                             optional=True)])
