"""IMAP command handlers, one module per command family; importing this
package registers them all in imap.registry.REGISTRY."""

from mailbag.imap.commands import (  # noqa: F401
    append,
    compress,
    context,
    fetch,
    general,
    idle,
    listing,
    login,
    mailboxes,
    messages,
    notify,
    quota,
    search,
    select,
    sort,
    thread,
)
