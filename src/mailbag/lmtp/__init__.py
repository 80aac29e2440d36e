"""LMTP delivery (RFC 2033): codec (sans-IO), addresses, delivery, session, listeners."""
