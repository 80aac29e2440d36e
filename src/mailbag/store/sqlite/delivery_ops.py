"""The write job of a delivery (LMTP DATA, ``mailbag deliver``): one
prepared message into several mailboxes in one transaction.

Each mailbox is appended through ``message_ops.append`` (the APPEND path,
DESIGN.md rule 2) inside its own savepoint, so one recipient over quota fails
alone while the others get the message; all of them reference the same
message row and blob (rule 5), so 50 recipients cost one blob and one fsync.
With one mailbox the job raises instead, and the writer's own savepoint
around the job does the rolling back (two statements fewer per delivery).
"""

from __future__ import annotations

from collections.abc import Sequence

from mailbag.store.api import AppendItem, AppendResult, StoreError
from mailbag.store.ingest import PreparedMessage
from mailbag.store.sqlite import message_ops
from mailbag.store.sqlite.writer import Txn


def deliver(
    txn: Txn, mailbox_ids: Sequence[int], item: AppendItem, prepared: PreparedMessage
) -> list[AppendResult | StoreError]:
    if len(mailbox_ids) == 1:
        # The common case: no savepoint of our own. A StoreError rolls back
        # the writer's savepoint around the whole job, and SqliteStore.deliver
        # turns it into this recipient's result .
        return [message_ops.append(txn, mailbox_ids[0], [item], [prepared])]
    results: list[AppendResult | StoreError] = []
    for mailbox_id in mailbox_ids:
        touched = dict(txn.effects.touched)
        txn.conn.execute("SAVEPOINT rcpt")
        try:
            result: AppendResult | StoreError = message_ops.append(
                txn, mailbox_id, [item], [prepared]
            )
        except StoreError as exc:
            txn.conn.execute("ROLLBACK TO rcpt")
            # A rolled-back append must not announce a modseq nobody wrote.
            txn.effects.touched = touched
            result = exc
        txn.conn.execute("RELEASE rcpt")
        results.append(result)
    return results
