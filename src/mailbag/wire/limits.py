"""Resource limits the command parser enforces before it allocates anything
(DESIGN.md rule 1; RFC 9051 §4.3 literals, RFC 7888 LITERAL+/LITERAL-,
RFC 4469/7889 TOOBIG and LIMIT response codes).

The dataclass is deliberately mutable: the session tightens the limits before
authentication (a few KiB of literal) and relaxes them after login.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    max_line: int = 65536                    # command text, literals excluded
    max_literal: int = 64 * 1024 * 1024      # one literal
    max_nesting: int = 16                    # parenthesized search keys
    max_command_size: int = 80 * 1024 * 1024  # text plus every literal
    # Largest non-synchronizing literal ({n+}); None: only the limits above
    # (LITERAL+). 4096 is LITERAL- (RFC 7888 §5): a larger one is refused
    # with a tagged BAD [TOOBIG] and its octets are read and discarded.
    max_nonsync_literal: int | None = None

    @classmethod
    def pre_auth(cls) -> Limits:
        """Tight limits for a connection that has not logged in yet."""
        return cls(max_line=8192, max_literal=8192, max_nesting=8,
                   max_command_size=64 * 1024)
