"""mime/: parse a message once (RFC 5322, RFC 2045-2047, RFC 2231) and serve
what IMAP needs from the result (RFC 9051 §6.4.5 sections, §7.5.2 ENVELOPE and
BODYSTRUCTURE; RFC 3516 BINARY; RFC 5256 base subject; RFC 8970 PREVIEW).

The entry points are re-exported here; see each module for the details.
"""

from mailbag.mime.message import Address, ParsedMessage, Part, SearchText
from mailbag.mime.parse import parse_message
from mailbag.mime.sections import binary_section, binary_size, find_part, section_bytes
from mailbag.mime.text import header_values, search_text
from mailbag.mime.transfer import UnknownEncoding

__all__ = [
    "Address", "ParsedMessage", "Part", "SearchText", "UnknownEncoding", "binary_section",
    "binary_size", "find_part", "header_values", "parse_message", "search_text",
    "section_bytes",
]
