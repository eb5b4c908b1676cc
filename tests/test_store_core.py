"""The store's core operations on every backend: accounts, secrets, faxboxes, intake, smtplog.

SQLite's own plumbing (its file, pragmas, migrations, group commit) is in test_store_sqlite.py.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from gateway import credentials
from gateway.errors import InvalidFieldError, NotFoundError, StorageError
from gateway.models import DocumentKind, Faxbox, NewFax, SmtpLogEntry, SourceDocument
from gateway.store import Store
from tests.builders import pdf_bytes
from tests.conftest import Clock, Tenant, make_tenant
from tests.stores import count, raw


async def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.create_faxbox(
            Faxbox(id="", account_id="no-such-account", name="x", smtp_email_address=""),
            "fax.test",
        )
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        await store.create_fax(NewFax(account_id="no-such-account", to_number="+14155550100"))


async def test_closed_store_raises_storage_error(store: Store) -> None:
    await store.close()
    with pytest.raises(StorageError):
        await store.create_account("late")
    with pytest.raises(StorageError):
        await store.recent_faxes(None, 1)
    await store.open()


# -- accounts and secrets ----------------------------------------------------------------------


async def test_tokens_are_stored_only_as_hashes(store: Store) -> None:
    account, auth_token, api_key = await store.create_account("acme", "ACME.example")
    assert re.fullmatch(r"[0-9a-f]{32}", account.id)
    assert account.realm == "acme.example"
    assert auth_token != api_key and len(auth_token) >= 40
    assert (await store.account_for_token(auth_token)) == account
    assert (await store.account_for_token(api_key, "api_key")) == account
    assert await store.account_for_token(api_key) is None  # kinds do not mix
    assert await store.account_for_token("guess") is None
    rows = await raw(store).fetchall("SELECT * FROM api_tokens")
    assert {r["token_hash"] for r in rows} == {
        credentials.token_hash(auth_token),
        credentials.token_hash(api_key),
    }
    stored = repr([tuple(r) for r in rows])
    assert auth_token not in stored and api_key not in stored


async def test_realm_is_unique(store: Store) -> None:
    await store.create_account("one", "corp.example")
    with pytest.raises(InvalidFieldError) as refused:
        await store.create_account("two", "CORP.example")
    assert (refused.value.field, refused.value.rule) == ("realm", "unique")
    assert (await store.account_by_realm("Corp.Example")) is not None


# -- faxboxes --------------------------------------------------------------------------------


async def test_faxbox_addresses(store: Store, tenant: Tenant) -> None:
    box = tenant.faxbox
    assert re.fullmatch(r"[0-9a-f]{8}\.fax\.test", box.smtp_email_address)
    assert box.custom_smtp_email_address == "fax.test"
    for domain in (box.smtp_email_address, box.smtp_email_address.upper(), "FAX.test"):
        found = await store.faxbox_by_domain(domain)
        assert found is not None and found.id == box.id
    assert await store.faxbox_by_domain("other.test") is None
    for login in (box.id, box.smtp_email_address.upper()):
        found = await store.faxbox_by_login(login)
        assert found is not None and found.id == box.id
    assert await store.faxbox_by_login("nobody") is None


async def test_custom_address_is_unique(store: Store, tenant: Tenant) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        await make_tenant(store, "copycat", domain="FAX.TEST")
    assert (refused.value.field, refused.value.rule) == ("custom_smtp_email_address", "unique")


async def test_faxbox_settings_round_trip(store: Store) -> None:
    tenant = await make_tenant(
        store,
        permit=("a@b.example", "re:.*@c\\.example"),
        retries=7,
        include_body=True,
        smtp_password="pw",
    )
    again = await store.get_faxbox(tenant.faxbox.id, tenant.account_id)
    assert again == tenant.faxbox
    assert again.smtp_permission_list == ("a@b.example", "re:.*@c\\.example")
    assert again.has_smtp_password
    stored = await store.faxbox_password_hash(again.id)
    assert stored is not None and credentials.verify_password("pw", stored)
    with pytest.raises(NotFoundError):
        await store.get_faxbox(tenant.faxbox.id, "another-account")


# -- intake ------------------------------------------------------------------------------------


def entry(**fields: object) -> SmtpLogEntry:
    fields.setdefault("created", 0.0)
    return SmtpLogEntry(id=credentials.new_id(), **fields)  # type: ignore[arg-type]


def docs() -> list[SourceDocument]:
    return [
        SourceDocument(DocumentKind.PDF, pdf_bytes(1), "a.pdf", 1),
        SourceDocument(DocumentKind.TEXT, b"note", "b.txt", 1),
    ]


async def test_accept_message_commits_jobs_documents_and_row_together(
    store: Store, tenant: Tenant
) -> None:
    log = entry(reply_code=250, reply_text="250 ok")
    faxes = [
        (
            credentials.new_id(),
            NewFax(
                account_id=tenant.account_id,
                to_number=n,
                faxbox_id=tenant.faxbox.id,
                message_id="<m@x>",
            ),
        )
        for n in ("+14155550100", "+14155550101")
    ]
    await store.accept_message(log, faxes, docs())
    for fax_id, _ in faxes:
        fax = await store.get_fax(fax_id)
        assert fax.smtplog_id == log.id
        assert [(d.filename, d.data) for d in await store.fax_documents(fax_id)] == [
            ("a.pdf", pdf_bytes(1)),
            ("b.txt", b"note"),
        ]
    assert (await store.get_smtplog(log.id)).reply_code == 250
    # The documents are stored once, however many recipients share them.
    assert await count(store, "SELECT count(*) FROM documents") == 2
    assert await count(store, "SELECT count(*) FROM fax_documents") == 4


async def test_accept_message_is_all_or_nothing(store: Store, tenant: Tenant) -> None:
    good = NewFax(account_id=tenant.account_id, to_number="+14155550100")
    bad = NewFax(account_id="no-such-account", to_number="+14155550101")
    faxes = [(credentials.new_id(), good), (credentials.new_id(), bad)]
    with pytest.raises(StorageError):
        await store.accept_message(entry(), faxes, docs())
    for table in ("faxes", "documents", "fax_documents", "smtplog"):
        assert await count(store, f"SELECT count(*) FROM {table}") == 0, table
    # The writer is usable again after the rollback.
    await store.create_account("after")


async def test_find_recent_fax(store: Store, tenant: Tenant, clock: Clock) -> None:
    fax_id = credentials.new_id()
    fax = NewFax(
        account_id=tenant.account_id,
        to_number="+14155550100",
        faxbox_id=tenant.faxbox.id,
        message_id="<m@x>",
    )
    await store.accept_message(entry(), [(fax_id, fax)], docs(), "digest-1")
    args = ("<m@x>", tenant.faxbox.id, "+14155550100", "digest-1")
    assert await store.find_recent_fax(*args, clock.now - 10) == fax_id
    assert await store.find_recent_fax(*args, clock.now + 1) is None
    assert await store.find_recent_fax("<other@x>", *args[1:], 0) is None
    assert await store.find_recent_fax(args[0], args[1], "+14155550101", args[3], 0) is None
    assert await store.find_recent_fax(*args[:3], "digest-2", 0) is None  # another message
    assert await store.find_recent_fax(args[0], None, *args[2:], 0) is None  # another faxbox


async def test_find_recent_fax_without_a_faxbox(store: Store, tenant: Tenant) -> None:
    """A job made with no faxbox (the faxbox was deleted since) is found by "no faxbox"."""
    fax_id = credentials.new_id()
    fax = NewFax(account_id=tenant.account_id, to_number="+14155550100", message_id="<m@x>")
    await store.accept_message(entry(), [(fax_id, fax)], docs(), "digest-1")
    assert await store.find_recent_fax("<m@x>", None, "+14155550100", "digest-1", 0) == fax_id
    assert (
        await store.find_recent_fax("<m@x>", tenant.faxbox.id, "+14155550100", "digest-1", 0)
        is None
    )


async def test_smtp_address_taken_except_by_the_faxbox_itself(store: Store, tenant: Tenant) -> None:
    box = tenant.faxbox
    for address in (box.smtp_email_address, "FAX.test"):
        assert await store.smtp_address_taken(address)
        assert not await store.smtp_address_taken(address, except_faxbox_id=box.id)
        assert await store.smtp_address_taken(address, except_faxbox_id="another-faxbox")
    assert not await store.smtp_address_taken("free.test")


async def test_smtplog_listing(store: Store, tenant: Tenant, clock: Clock) -> None:
    other = await make_tenant(store, "other", domain="other.test")
    ids = []
    for n in range(5):
        clock.advance(1)
        log = entry(created=clock.now, mail_from=f"s{n}@x")
        if n % 2:
            from gateway.models import RecipientOutcome

            log.recipients.append(
                RecipientOutcome("r@x", "250", account_id=other.account_id, accepted=True)
            )
        await store.write_smtplog(log)
        ids.append(log.id)
    newest = await store.recent_smtplog(None, 3)
    assert [e.id for e in newest] == ids[::-1][:3]
    assert [e.id for e in await store.recent_smtplog(other.account_id, 10)] == [ids[3], ids[1]]
    assert (await store.get_smtplog(ids[1], other.account_id)).mail_from == "s1@x"
    with pytest.raises(NotFoundError):
        await store.get_smtplog(ids[1], tenant.account_id)  # another account's row


async def test_concurrent_messages_each_keep_their_documents(store: Store, tenant: Tenant) -> None:
    async def accept(n: int) -> str:
        fax_id = credentials.new_id()
        fax = NewFax(account_id=tenant.account_id, to_number=f"+1415555{n:04d}")
        await store.accept_message(entry(), [(fax_id, fax)], docs())
        return fax_id

    ids = await asyncio.gather(*(accept(n) for n in range(40)))
    for fax_id in ids:
        assert [d.filename for d in await store.fax_documents(fax_id)] == ["a.pdf", "b.txt"]
    assert await count(store, "SELECT count(*) FROM documents") == 80
    assert await count(store, "SELECT count(DISTINCT document_id) FROM fax_documents") == 80
    # Ids keep counting after documents written one at a time elsewhere.
    await store.create_fax(NewFax(account_id=tenant.account_id, to_number="+14155550100"), docs())
    await accept(99)


async def test_a_bad_message_fails_alone(store: Store, tenant: Tenant) -> None:
    good = [
        (credentials.new_id(), NewFax(account_id=tenant.account_id, to_number="+14155550100"))
        for _ in range(5)
    ]
    bad = (credentials.new_id(), NewFax(account_id="no-such-account", to_number="+14155550100"))
    results = await asyncio.gather(
        *(store.accept_message(entry(), [fax], docs()) for fax in [*good[:2], bad, *good[2:]]),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["NoneType"] * 2 + ["StorageError"] + [
        "NoneType"
    ] * 3
    for fax_id, _ in good:
        await store.get_fax(fax_id)
    with pytest.raises(NotFoundError):
        await store.get_fax(bad[0])


async def test_a_cancelled_caller_does_not_cut_the_commit(store: Store, tenant: Tenant) -> None:
    fax_id = credentials.new_id()
    fax = NewFax(account_id=tenant.account_id, to_number="+14155550100")
    waiting = asyncio.ensure_future(store.accept_message(entry(), [(fax_id, fax)], docs()))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await store.accept_message(entry(), [], [])  # queued behind it: runs after its commit
    assert (await store.get_fax(fax_id)).id == fax_id
