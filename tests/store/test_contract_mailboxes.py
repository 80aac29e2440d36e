"""Store contract: accounts, mailboxes, hierarchy, subscriptions."""

from __future__ import annotations

import pytest

from conftest import make_message
from mailbag.store.api import (
    DEFAULT_MAILBOXES,
    INBOX,
    Account,
    AlreadyExists,
    AppendItem,
    HasChildren,
    NotAllowed,
    NotFound,
    Store,
)


async def names_of(store: Store, account: Account) -> dict[str, bool]:
    return {m.name: m.noselect for m in await store.list_mailboxes(account.id)}


async def test_create_account_makes_default_mailboxes(store: Store, account: Account) -> None:
    boxes = {m.name: m for m in await store.list_mailboxes(account.id)}
    assert set(boxes) == {name for name, _ in DEFAULT_MAILBOXES}
    for name, special in DEFAULT_MAILBOXES:
        assert boxes[name].special_use == special
        assert boxes[name].uidnext == 1
        assert boxes[name].messages == 0
        assert not boxes[name].noselect
    assert len({m.uidvalidity for m in boxes.values()}) == len(boxes)


async def test_accounts(store: Store, account: Account) -> None:
    assert (await store.get_account("alice@example.org")) == account
    assert (await store.get_account("ALICE@example.org")) == account
    assert await store.get_account("nobody") is None
    with pytest.raises(AlreadyExists):
        await store.create_account("alice@example.org", "x")
    bob = await store.create_account("bob@example.org", "h2")
    assert [a.name for a in await store.list_accounts()] == ["alice@example.org", "bob@example.org"]
    await store.set_password_hash(bob.id, "h3")
    got = await store.get_account("bob@example.org")
    assert got is not None and got.password_hash == "h3"
    inbox = await store.get_mailbox(bob.id, INBOX)
    assert inbox is not None
    await store.append(inbox.id, [AppendItem(make_message())])
    await store.delete_account(bob.id)
    assert await store.get_account("bob@example.org") is None
    assert await store.list_mailboxes(bob.id) == []
    with pytest.raises(NotFound):
        await store.delete_account(bob.id)


async def test_inbox_is_case_insensitive(store: Store, account: Account) -> None:
    inbox = await store.get_mailbox(account.id, INBOX)
    assert inbox is not None
    assert await store.get_mailbox(account.id, "inbox") == inbox
    assert await store.get_mailbox(account.id, "InBoX") == inbox
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(account.id, "inbox")
    child = await store.create_mailbox(account.id, "inbox/Child")
    assert child.name == "INBOX/Child"
    # Other names are case-sensitive.
    assert await store.get_mailbox(account.id, "drafts") is None


async def test_create_and_get_mailbox(store: Store, account: Account) -> None:
    box = await store.create_mailbox(account.id, "Projects", "\\Flagged")
    assert box.name == "Projects" and box.special_use == "\\Flagged"
    assert box.uidnext == 1 and box.messages == 0
    assert await store.get_mailbox(account.id, "Projects") == box
    assert await store.get_mailbox(account.id, "Nope") is None
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(account.id, "Projects")
    # A trailing separator is a hint, not part of the name.
    assert (await store.create_mailbox(account.id, "Other/")).name == "Other"
    with pytest.raises(NotAllowed):
        await store.create_mailbox(account.id, "a//b")
    with pytest.raises(NotFound):
        await store.create_mailbox(account.id + 1000, "x")


async def test_create_makes_superior_mailboxes(store: Store, account: Account) -> None:
    await store.create_mailbox(account.id, "a/b/c")
    assert {k: v for k, v in (await names_of(store, account)).items() if k[0] == "a"} == {
        "a": False,
        "a/b": False,
        "a/b/c": False,
    }
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(account.id, "a/b")


async def test_placeholder_becomes_real_on_create(store: Store, account: Account) -> None:
    await store.create_mailbox(account.id, "a/b")
    await store.delete_mailbox(account.id, "a")
    placeholder = await store.get_mailbox(account.id, "a")
    assert placeholder is not None and placeholder.noselect
    with pytest.raises(NotAllowed):
        await store.append(placeholder.id, [AppendItem(make_message())])
    real = await store.create_mailbox(account.id, "a")
    assert not real.noselect and real.id == placeholder.id


async def test_delete_mailbox(store: Store, account: Account) -> None:
    box = await store.create_mailbox(account.id, "Old")
    await store.append(box.id, [AppendItem(make_message())])
    await store.delete_mailbox(account.id, "Old")
    assert await store.get_mailbox(account.id, "Old") is None
    with pytest.raises(NotFound):
        await store.delete_mailbox(account.id, "Old")
    with pytest.raises(NotAllowed):
        await store.delete_mailbox(account.id, "inbox")
    with pytest.raises(NotFound):
        await store.message_list(box.id)


async def test_delete_with_children_leaves_placeholder(store: Store, account: Account) -> None:
    parent = await store.create_mailbox(account.id, "p")
    await store.create_mailbox(account.id, "p/kid")
    await store.append(parent.id, [AppendItem(make_message())])
    await store.delete_mailbox(account.id, "p")
    got = await store.get_mailbox(account.id, "p")
    assert got is not None and got.noselect and got.messages == 0
    with pytest.raises(HasChildren):
        await store.delete_mailbox(account.id, "p")
    # Deleting the last child removes the now useless placeholder.
    await store.delete_mailbox(account.id, "p/kid")
    assert await store.get_mailbox(account.id, "p") is None


async def test_uidvalidity_changes_on_recreate(store: Store, account: Account) -> None:
    first = await store.create_mailbox(account.id, "Again")
    await store.append(first.id, [AppendItem(make_message()), AppendItem(make_message())])
    await store.delete_mailbox(account.id, "Again")
    second = await store.create_mailbox(account.id, "Again")
    assert second.uidvalidity != first.uidvalidity
    assert second.uidvalidity > 0


async def test_rename_moves_children(store: Store, account: Account) -> None:
    a = await store.create_mailbox(account.id, "a")
    ab = await store.create_mailbox(account.id, "a/b")
    await store.append(ab.id, [AppendItem(make_message())])
    await store.set_subscribed(account.id, "a/b", True)
    await store.rename_mailbox(account.id, "a", "c")
    names = await names_of(store, account)
    assert "a" not in names and "a/b" not in names
    c = await store.get_mailbox(account.id, "c")
    cb = await store.get_mailbox(account.id, "c/b")
    assert c is not None and c.id == a.id and c.uidvalidity == a.uidvalidity
    assert cb is not None and cb.id == ab.id and cb.messages == 1
    assert "c/b" in await store.subscriptions(account.id)
    assert "a/b" not in await store.subscriptions(account.id)


async def test_rename_errors_and_parents(store: Store, account: Account) -> None:
    await store.create_mailbox(account.id, "x")
    await store.create_mailbox(account.id, "y")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(account.id, "x", "y")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(account.id, "x", "INBOX")
    with pytest.raises(NotFound):
        await store.rename_mailbox(account.id, "nope", "z")
    with pytest.raises(NotAllowed):
        await store.rename_mailbox(account.id, "x", "x/sub")
    await store.rename_mailbox(account.id, "x", "deep/er/x")
    names = await names_of(store, account)
    # Superiors are created as real mailboxes and stay when the child leaves.
    assert not names["deep"] and not names["deep/er"] and not names["deep/er/x"]
    await store.rename_mailbox(account.id, "deep/er/x", "x")
    names = await names_of(store, account)
    assert "deep" in names and "deep/er" in names and "x" in names


async def test_rename_inbox(store: Store, account: Account) -> None:
    inbox = await store.get_mailbox(account.id, INBOX)
    assert inbox is not None
    kid = await store.create_mailbox(account.id, "INBOX/kid")
    await store.append(inbox.id, [AppendItem(make_message(), frozenset({"\\Seen"})),
                                  AppendItem(make_message())])
    await store.rename_mailbox(account.id, "inbox", "Old Mail")
    after = await store.get_mailbox(account.id, INBOX)
    moved = await store.get_mailbox(account.id, "Old Mail")
    assert after is not None and moved is not None
    assert after.id == inbox.id and after.messages == 0 and after.uidvalidity == inbox.uidvalidity
    assert after.uidnext == 3
    assert moved.messages == 2 and moved.unseen == 1
    assert (await store.get_mailbox(account.id, "INBOX/kid")) == kid
    changes = await store.changes_since(inbox.id, 0)
    assert changes.expunged == (1, 2)


async def test_subscriptions(store: Store, account: Account) -> None:
    base = set(await store.subscriptions(account.id))
    assert INBOX in base
    await store.set_subscribed(account.id, "Does/Not/Exist", True)
    await store.set_subscribed(account.id, "Does/Not/Exist", True)
    assert set(await store.subscriptions(account.id)) == base | {"Does/Not/Exist"}
    await store.set_subscribed(account.id, "Does/Not/Exist", False)
    await store.set_subscribed(account.id, "Trash", False)
    assert set(await store.subscriptions(account.id)) == base - {"Trash"}
    # Deleting a mailbox leaves its subscription alone (RFC 9051 §6.3.9).
    await store.create_mailbox(account.id, "Tmp")
    await store.set_subscribed(account.id, "Tmp", True)
    await store.delete_mailbox(account.id, "Tmp")
    assert "Tmp" in await store.subscriptions(account.id)
