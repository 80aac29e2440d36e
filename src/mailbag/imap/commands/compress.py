"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK, both directions of the
connection are raw DEFLATE streams (RFC 1951, no zlib header), the server
flushing with Z_SYNC_FLUSH after each batch of output so that every response,
an IDLE push included, reaches the client at once (§4). The compression
itself lives in imap/transport.py, inside TLS when TLS is active.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailbag.imap.registry import AUTH, CommandError, Reply, bad, command
from mailbag.log import log_event
from mailbag.wire.commands import Compress

if TYPE_CHECKING:
    from mailbag.imap.session import Session

log = logging.getLogger("mailbag.imap")


@command(Compress, AUTH)
async def compress(s: Session, cmd: Compress) -> Reply:
    if cmd.mechanism != "DEFLATE":
        # §3: BAD for an unknown mechanism.
        raise bad(f"Unknown compression mechanism: {cmd.mechanism}")
    if s.writer.compressing:
        raise CommandError("DEFLATE is already active", "COMPRESSIONACTIVE")
    # The OK itself goes out uncompressed; everything after it is deflated,
    # including what the client pipelined behind the command, which the
    # parser already holds and hands back to be inflated.
    s.send(f"{cmd.tag} OK DEFLATE active\r\n".encode())
    await s.flush()
    s.writer.start_compress(s.parser.take_buffer())
    log_event(log, "compress", user=s.account.name if s.account else None, rip=s.remote_ip)
    return Reply(answered=True)
