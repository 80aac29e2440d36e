"""Moving mail in and out of mailbag: ``mailbag import`` and ``mailbag export``.

Readers (``mbox``, ``maildir``, ``imapsource``) turn a foreign store into
``SourceMessage`` objects; ``importer`` feeds them through the store's one
ingest path (``Store.append``) and records each one in a small journal
(``journal``) so an interrupted import resumes without duplicates;
``exporter`` writes an account back out as mbox files or a Maildir++ tree.
See docs/import-export.md for the formats and the choices made.
"""
