"""One fax: read it from either folder name, resubmit or forward it, delete it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.api.shapes import FaxEnvelope
from gateway.models import Direction, DocumentKind, FaxStatus, NewFax, SourceDocument
from gateway.store import Store
from gateway.store.database import Database
from tests.api.conftest import Created, assert_error, auth, count, faxes_url, seed_fax
from tests.conftest import Tenant
from tests.stores import link_new_document, raw, tx_result


async def call(
    client: httpx.AsyncClient, tenant: Tenant, method: str, *path: str, **kw: Any
) -> httpx.Response:
    return await client.request(method, faxes_url(tenant, *path), headers=auth(tenant), **kw)


@pytest.mark.parametrize("status", [FaxStatus.PENDING, FaxStatus.COMPLETED])
async def test_outbound_fax_from_both_folder_names(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, status: FaxStatus
) -> None:
    fax = await seed_fax(store, tenant, status, pages=2)
    for folder in ("outgoing", "outbox"):
        response = await call(client, tenant, "GET", folder, fax.id)
        assert response.status_code == 200, response.text
        data = FaxEnvelope.model_validate(response.json()).data
        assert data.id == fax.id and data.status == status.value
        assert isinstance(data.created, int) and isinstance(data.modified, int)
        assert data.attempts_log == []
        assert data.tx_result is not None and data.tx_result.total_pages == 2
    for folder in ("incoming", "inbox"):
        assert_error(await call(client, tenant, "GET", folder, fax.id), 404)
    assert_error(await call(client, tenant, "GET", "outbox", "0" * 32), 404)


async def test_inbound_fax_and_attempts_log(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    inbound = await seed_fax(store, tenant, FaxStatus.COMPLETED, Direction.INBOUND, roles=("tiff",))
    data = (await call(client, tenant, "GET", "incoming", inbound.id)).json()["data"]
    assert data["folder"] == "inbox" and "rx_result" in data and "tx_result" not in data
    sent = await seed_fax(store, tenant, FaxStatus.FAILED, attempts=1)
    await raw(store).execute(
        "INSERT INTO attempts (fax_id, number, started, ended, outcome, failure_class, result)"
        " VALUES (?, 1, ?, ?, 'failed', 'busy', '{\"success\": false}')",
        (sent.id, 1_800_000_000.0, 1_800_000_030.0),
    )
    log = (await call(client, tenant, "GET", "outbox", sent.id)).json()["data"]["attempts_log"]
    assert log == [
        {
            "attempt": 1,
            "started": 1_800_000_000 + 62167219200,
            "ended": 1_800_000_030 + 62167219200,
            "outcome": "failed",
            "failure_class": "busy",
            "result": {"success": False},
        }
    ]


async def test_resubmit_copies_the_job_and_shares_its_document(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, created: Created
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.FAILED)
    body = {"action": "resubmit", "data": {"to_number": "4155550123", "retries": 2}}
    response = await call(client, tenant, "PUT", "outbox", fax.id, json=body)
    assert response.status_code == 201, response.text
    new = FaxEnvelope.model_validate(response.json()).data
    assert new.id != fax.id
    assert new.status == "attaching_files" and new.attempts == 0
    assert new.to_number == "+14155550123" and new.retries == 2
    assert new.from_number == "+14155550199"  # copied from the original
    assert created.calls == 1
    original = await store.fax_documents(fax.id, "original")
    copy = await store.fax_documents(new.id, "original")
    assert [d.data for d in copy] == [d.data for d in original]
    # Shared, not copied: one documents row for both jobs.
    assert (
        await count(
            store, "SELECT count(DISTINCT document_id) FROM fax_documents WHERE role = 'original'"
        )
        == 1
    )
    # Deleting the original keeps the copy's document.
    assert (await call(client, tenant, "DELETE", "outbox", fax.id)).status_code == 200
    assert [d.data for d in await store.fax_documents(new.id, "original")] == [
        d.data for d in original
    ]


async def test_resubmit_with_nothing_to_send_is_409_unless_given_a_url(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.FAILED, roles=())
    assert_error(
        await call(client, tenant, "PUT", "outbox", fax.id, json={"action": "resubmit"}), 409
    )
    body = {"action": "resubmit", "data": {"document": {"url": "https://docs.example.com/b.pdf"}}}
    response = await call(client, tenant, "PUT", "outbox", fax.id, json=body)
    assert response.status_code == 201
    assert response.json()["data"]["document"] == {
        "url": "https://docs.example.com/b.pdf",
        "method": "get",
    }


async def test_forward_sends_the_received_image(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    received = await seed_fax(
        store, tenant, FaxStatus.COMPLETED, Direction.INBOUND, roles=("tiff", "pdf")
    )
    missing = await call(
        client, tenant, "PUT", "inbox", received.id, json={"action": "forward", "data": {}}
    )
    assert "to_number" in assert_error(missing, 400)["data"]
    body = {"action": "forward", "data": {"to_number": "+14155550177"}}
    response = await call(client, tenant, "PUT", "inbox", received.id, json=body)
    assert response.status_code == 201, response.text
    new = response.json()["data"]
    assert new["direction"] == "outbound" and new["to_number"] == "+14155550177"
    assert new["from_number"] == tenant.faxbox.caller_id  # the faxbox sends it on
    [doc] = await store.fax_documents(new["id"], "original")
    assert doc.kind.value == "tiff"


@pytest.mark.parametrize(
    ("folder", "body", "rule"),
    [
        ("outbox", {}, "required"),
        ("outbox", {"data": {}}, "required"),
        ("outbox", {"action": "forward"}, "enum"),
        ("outbox", {"action": "explode"}, "enum"),
        ("inbox", {"action": "resubmit", "data": {"to_number": "+14155550177"}}, "enum"),
    ],
)
async def test_bad_actions_are_400(
    client: httpx.AsyncClient,
    tenant: Tenant,
    store: Store,
    folder: str,
    body: dict[str, Any],
    rule: str,
) -> None:
    direction = Direction.OUTBOUND if folder == "outbox" else Direction.INBOUND
    fax = await seed_fax(store, tenant, FaxStatus.COMPLETED, direction)
    response = await call(client, tenant, "PUT", folder, fax.id, json=body)
    assert rule in assert_error(response, 400)["data"]["action"]


async def test_resubmit_validates_overrides(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.FAILED)
    body = {"action": "resubmit", "data": {"to_number": "12"}}
    assert (
        "to_number"
        in assert_error(await call(client, tenant, "PUT", "outbox", fax.id, json=body), 400)["data"]
    )


async def test_delete_removes_the_fax_and_its_bytes(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.COMPLETED)
    before = await count(store, "SELECT count(*) FROM documents")
    # A DELETE may carry a JSON body (an SDK sends one): it is ignored.
    response = await call(client, tenant, "DELETE", "outbox", fax.id, json={"data": {}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["data"]["id"] == fax.id
    assert await count(store, "SELECT count(*) FROM faxes WHERE id = ?", fax.id) == 0
    assert await count(store, "SELECT count(*) FROM fax_documents WHERE fax_id = ?", fax.id) == 0
    assert await count(store, "SELECT count(*) FROM documents") == before - 3
    assert_error(await call(client, tenant, "GET", "outbox", fax.id), 404)
    assert_error(await call(client, tenant, "DELETE", "outbox", fax.id), 404)


async def test_delete_cancels_pending_but_not_sending(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    pending = await seed_fax(store, tenant, FaxStatus.PENDING)
    assert (await call(client, tenant, "DELETE", "outgoing", pending.id)).status_code == 200
    assert await count(store, "SELECT count(*) FROM faxes WHERE id = ?", pending.id) == 0
    sending = await seed_fax(store, tenant, FaxStatus.PROCESSING)
    body = assert_error(await call(client, tenant, "DELETE", "outbox", sending.id), 409)
    assert "transmitted" in body["data"]["message"]
    assert await count(store, "SELECT count(*) FROM faxes WHERE id = ?", sending.id) == 1
    receiving = await seed_fax(store, tenant, FaxStatus.PROCESSING, Direction.INBOUND)
    assert_error(await call(client, tenant, "DELETE", "incoming", receiving.id), 409)


async def test_deleted_bytes_are_zeroed_on_disk(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, database: Database
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.COMPLETED, roles=())
    secret = b"TOP-SECRET-FAX-CONTENT-" * 400
    await link_new_document(
        store, fax.id, "original", 0, SourceDocument(DocumentKind.TEXT, secret, "a.txt", 1)
    )
    assert (await call(client, tenant, "DELETE", "outbox", fax.id)).status_code == 200
    # Zeroed pages reach the database file at the next checkpoint (SQLite runs them by itself).
    await raw(store).fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = database.path.read_bytes()
    assert b"TOP-SECRET-FAX-CONTENT-" not in on_disk


async def test_the_state_of_each_notification_shows_on_the_fax(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    job = NewFax(
        account_id=tenant.account_id,
        faxbox_id=tenant.faxbox.id,
        to_number="+14155550123",
        notifications={"email": {"send_to": ["alice@example.com"]}},
    )
    fax_id = await store.create_fax(job, [])
    assert await store.fail_job(fax_id, "doc.pdf: corrupt PDF", tx_result())
    data = (await call(client, tenant, "GET", "outbox", fax_id)).json()["data"]
    [notice] = data["notification_log"]
    assert notice["channel"] == "email" and notice["to"] == "alice@example.com"
    assert notice["event"] == "outbound_failed" and notice["state"] == "pending"
    assert notice["created"] > 62167219200  # Gregorian seconds, like every API time
