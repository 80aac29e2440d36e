"""POP3 and IMAP on the same INBOX: a message deleted over POP3 is expunged
for IMAP too, and an IMAP session that has INBOX selected hears EXPUNGE
(through the store's change feed, DESIGN.md rule 4); unique-ids survive a
server restart (RFC 1939 §7 UIDL)."""

from __future__ import annotations

import shutil

import pytest
import testserver
from pop3_support import append_raw, imap, message, new_account, pop


def test_imap_session_sees_expunge_of_pop3_deleted_message(server):
    user, pw = new_account(server)
    for n in (1, 2, 3):
        append_raw(server, user, pw, message(n))
    c = imap(server, user, pw)
    c.select("INBOX")
    _, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"1", b"2", b"3"]

    p = pop(server, user, pw)
    p.dele(2)
    p.quit()

    typ, _ = c.noop()
    assert typ == "OK"
    assert c.response("EXPUNGE")[1] == [b"2"]
    _, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"1", b"3"]
    c.logout()


def test_imap_deleted_flags_are_left_for_imap_to_expunge(server):
    """QUIT expunges only what this POP3 session DELE'd."""
    user, pw = new_account(server)
    for n in (1, 2):
        append_raw(server, user, pw, message(n))
    c = imap(server, user, pw)
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Deleted)")
    p = pop(server, user, pw)
    p.dele(2)
    p.quit()
    c.noop()
    _, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"1"]
    c.logout()


def test_message_expunged_by_imap_during_a_pop3_session(server):
    user, pw = new_account(server)
    append_raw(server, user, pw, message(1))
    append_raw(server, user, pw, message(2))
    p = pop(server, user, pw)
    c = imap(server, user, pw)
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    # The snapshot still numbers it, but its content is gone.
    import poplib

    with pytest.raises(poplib.error_proto, match="no longer available"):
        p.retr(1)
    p.dele(1)
    assert b"0 messages deleted" in p.quit()


@pytest.fixture
def own_server(tmp_path):
    srv = testserver.TestServer(tmp_path / "data")
    srv.write_config()
    srv.add_user("dave", "dave-pw")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def test_uidl_is_stable_across_a_restart(own_server):
    srv = own_server
    for n in (1, 2, 3):
        append_raw(srv, "dave", "dave-pw", message(n))
    p = pop(srv, "dave", "dave-pw")
    _, before, _ = p.uidl()
    p.dele(1)
    p.quit()

    srv.stop()
    srv.start()
    append_raw(srv, "dave", "dave-pw", message(4))
    p = pop(srv, "dave", "dave-pw")
    _, after, _ = p.uidl()
    p.quit()
    old = [line.split()[1] for line in before]
    new = [line.split()[1] for line in after]
    assert new[:2] == old[1:]                     # survivors keep their ids
    assert new[2] not in old                      # a new message never reuses one
    assert len(new) == 3


def test_shutdown_ends_sessions_without_update(own_server):
    srv = own_server
    append_raw(srv, "dave", "dave-pw", message(1))
    p = pop(srv, "dave", "dave-pw")
    p.dele(1)
    srv.stop()                                    # SIGTERM: graceful shutdown
    assert p.file.readline() == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    p.close()
    srv.start()
    p = pop(srv, "dave", "dave-pw")
    assert p.stat()[0] == 1                       # DELE without QUIT: nothing deleted
    p.quit()
