"""POP3 front end (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL):
one ``Pop3Session`` per connection, serving the account's INBOX."""
