"""The parser's working tree of MIME entities (RFC 2045 §2.4 "entity",
RFC 2046 §5.1 multipart, §5.2.1 message/rfc822).

Unlike :class:`mailbag.mime.message.Part` this keeps the parsed header fields
so that ENVELOPE and BODYSTRUCTURE can be rendered from it at ingest; it lives
only while a message is being parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailbag.mime.headers import HeaderField
from mailbag.mime.message import Part
from mailbag.mime.params import StructuredValue


@dataclass(slots=True)
class Entity:
    header_start: int
    body_start: int
    body_end: int
    fields: list[HeaderField]
    type: str
    subtype: str
    ctype: StructuredValue | None      # None: defaulted (absent, invalid or capped)
    encoding: str
    lines: int = 0
    children: list[Entity] = field(default_factory=list)
    message: Entity | None = None

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    # The first value of each field name, made on the first look-up:
    # rendering ENVELOPE and BODYSTRUCTURE asks ~30 names a message.
    _first: dict[bytes, bytes] | None = field(default=None, repr=False, compare=False)

    def header(self, key: bytes) -> bytes | None:
        """The raw value of the first field named *key* (upper-case)."""
        first = self._first
        if first is None:
            first = self._first = {f.key: f.value for f in reversed(self.fields)}
        return first.get(key)

    def to_part(self) -> Part:
        params = self.ctype.decoded if self.ctype is not None else ()
        return Part(
            header_start=self.header_start,
            body_start=self.body_start,
            body_end=self.body_end,
            type=self.type,
            subtype=self.subtype,
            params=params,
            encoding=self.encoding,
            lines=self.lines,
            children=tuple(c.to_part() for c in self.children),
            message=self.message.to_part() if self.message is not None else None,
        )
