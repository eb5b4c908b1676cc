"""Folder lists and the smtplog: order, keyset pages, signed cursors, time ranges, filters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.api.paging import MAX_RANGE_S
from gateway.api.shapes import FaxListEnvelope, SmtpLogEnvelope, SmtpLogListEnvelope
from gateway.models import Direction, FaxStatus, RecipientOutcome, SmtpLogEntry
from gateway.store import Store
from gateway.views import GREGORIAN_OFFSET
from tests.api.conftest import ADMIN, assert_error, auth, faxes_url, seed_fax
from tests.conftest import Clock, Tenant

FOLDER_STATES = {
    "outgoing": (Direction.OUTBOUND, FaxStatus.PENDING),
    "outbox": (Direction.OUTBOUND, FaxStatus.COMPLETED),
    "incoming": (Direction.INBOUND, FaxStatus.PROCESSING),
    "inbox": (Direction.INBOUND, FaxStatus.COMPLETED),
}


async def get(
    client: httpx.AsyncClient, tenant: Tenant, path: str, **params: Any
) -> httpx.Response:
    return await client.get(faxes_url(tenant, path), headers=auth(tenant), params=params)


@pytest.mark.parametrize("folder", list(FOLDER_STATES))
async def test_each_folder_lists_its_own_faxes(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, clock: Clock, folder: str
) -> None:
    ids = {}
    for name, (direction, status) in FOLDER_STATES.items():
        ids[name] = (await seed_fax(store, tenant, status, direction, created=clock() - 60)).id
    response = await get(client, tenant, folder)
    assert response.status_code == 200
    body = FaxListEnvelope.model_validate(response.json())
    assert [row.id for row in body.data] == [ids[folder]]
    row = response.json()["data"][0]
    assert row["folder"] == folder
    assert isinstance(row["created"], int)
    assert set(row) >= {
        "id",
        "status",
        "from",
        "to",
        "from_number",
        "to_number",
        "faxbox_id",
        "pages",
    }
    result = "rx_result" if folder in ("incoming", "inbox") else "tx_result"
    assert row[result]["success"] is False
    assert "document" not in row and "notifications" not in row  # summaries only
    assert body.page_size == 1 and body.next_start_key is None


async def test_failed_faxes_are_in_the_outbox(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    failed = await seed_fax(store, tenant, FaxStatus.FAILED)
    attaching = await seed_fax(store, tenant, FaxStatus.ATTACHING_FILES)
    assert [r["id"] for r in (await get(client, tenant, "outbox")).json()["data"]] == [failed.id]
    outgoing = (await get(client, tenant, "outgoing")).json()["data"]
    assert [r["id"] for r in outgoing] == [attaching.id]


async def test_pages_walk_every_row_once_newest_first(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, clock: Clock
) -> None:
    expected = []
    for n in range(23):
        fax = await seed_fax(store, tenant, created=clock() - 1000 + n // 2, roles=())
        expected.append(fax.id)
    # Newest first; rows created in the same second come in id order (keyset tie-break).
    rows = (await get(client, tenant, "outbox", paginate="false")).json()["data"]
    assert len(rows) == 23
    assert [r["created"] for r in rows] == sorted((r["created"] for r in rows), reverse=True)
    seen: list[str] = []
    params: dict[str, Any] = {"page_size": 5}
    pages = 0
    while True:
        body = (await get(client, tenant, "outbox", **params)).json()
        seen += [r["id"] for r in body["data"]]
        pages += 1
        if "next_start_key" not in body:
            break
        assert isinstance(body["next_start_key"], str)
        params = {"page_size": 5, "start_key": body["next_start_key"]}
        # A row created meanwhile (newer) does not shift the pages already being walked.
        if pages == 1:
            await seed_fax(store, tenant, created=clock(), roles=())
    assert pages == 5 and len(seen) == 23 and len(set(seen)) == 23
    assert seen == [r["id"] for r in rows]
    ascending = (await get(client, tenant, "outbox", ascending="true", paginate="false")).json()
    assert [r["id"] for r in ascending["data"]][:23] == list(reversed(seen))


async def test_cursors_are_tamper_proof_and_bound_to_their_list(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    for _ in range(3):
        await seed_fax(store, tenant, roles=())
    key = (await get(client, tenant, "outbox", page_size=1)).json()["next_start_key"]
    payload, mac = key.split(".")
    for forged in (
        f"{payload}.{mac[:-2]}AA",
        f"{payload[:-2]}AA.{mac}",
        "g2gCZAAFaGVsbG9kAAV3b3JsZA",  # an Erlang term, as Kazoo would have decoded
        "....",
        "x",
    ):
        body = assert_error(await get(client, tenant, "outbox", start_key=forged), 400)
        assert "start_key" in body["data"]
    assert_error(await get(client, tenant, "inbox", start_key=key), 400)
    assert (await get(client, tenant, "outbox", start_key=key)).status_code == 200


@pytest.mark.parametrize(
    ("value", "rule"),
    [("abc", "type"), ("0", "minimum"), ("-3", "minimum"), ("1001", "maximum"), ("1.5", "type")],
)
async def test_bad_page_size(
    client: httpx.AsyncClient, tenant: Tenant, value: str, rule: str
) -> None:
    body = assert_error(await get(client, tenant, "outbox", page_size=value), 400)
    assert rule in body["data"]["page_size"]


async def test_date_range(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, clock: Clock
) -> None:
    now_g = round(clock()) + GREGORIAN_OFFSET
    old = await seed_fax(store, tenant, created=clock() - 40 * 86400, roles=())
    new = await seed_fax(store, tenant, created=clock() - 10, roles=())
    default = (await get(client, tenant, "outbox")).json()["data"]
    assert [r["id"] for r in default] == [new.id]  # the default range: the last 31 days + 1 h
    then = now_g - 40 * 86400
    rows = (
        await get(client, tenant, "outbox", created_from=then - 5, created_to=f"{then + 5}.999")
    ).json()
    assert [r["id"] for r in rows["data"]] == [old.id]
    reversed_ = assert_error(
        await get(client, tenant, "outbox", created_from=now_g, created_to=now_g - 1), 400
    )
    assert reversed_["data"]["created_from"]["date_range"]["cause"] == now_g
    assert "prior to" in reversed_["data"]["created_from"]["date_range"]["message"]
    too_long = assert_error(
        await get(client, tenant, "outbox", created_from=now_g - MAX_RANGE_S - 1, created_to=now_g),
        400,
    )
    assert "date_range" in too_long["data"]["created_from"]
    # Garbage and non-positive values fall back to the defaults, as in Kazoo.
    for junk in ("abc", "-5", "0", "nan", "undefined"):
        assert (await get(client, tenant, "outbox", created_from=junk)).status_code == 200


async def test_exact_bounds_are_inclusive(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, clock: Clock
) -> None:
    fax = await seed_fax(store, tenant, created=clock() - 100.4, roles=())
    shown = (await get(client, tenant, "outbox")).json()["data"][0]["created"]
    for params in ({"created_from": shown}, {"created_to": shown, "created_from": shown - 10}):
        assert [
            r["id"] for r in (await get(client, tenant, "outbox", **params)).json()["data"]
        ] == [fax.id]
    assert (await get(client, tenant, "outbox", created_from=shown + 1)).json()["data"] == []


async def test_filters_and_unknown_params(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    a = await seed_fax(store, tenant, to_number="+14155550101", roles=())
    b = await seed_fax(store, tenant, to_number="+14155550102", roles=())

    async def ids(**params: Any) -> list[str]:
        response = await get(client, tenant, "outbox", **params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert await ids(filter_id=a.id) == [a.id]  # the PHP SDK's filter
    assert await ids(filter_to_number="+14155550102") == [b.id]
    assert await ids(filter_to="+14155550102") == [b.id]
    assert await ids(filter_status="failed") == []
    assert set(await ids(filter_folder="outbox")) == {a.id, b.id}
    assert await ids(filter_folder="inbox") == []
    assert await ids(filter_no_such_field="x") == []
    assert set(await ids(_="1700000000000", status="whatever", foo="bar")) == {a.id, b.id}


def log_entry(
    entry_id: str, created: float, account_id: str | None, reply: int = 250
) -> SmtpLogEntry:
    return SmtpLogEntry(
        id=entry_id,
        created=created,
        peer_ip="192.0.2.7",
        mail_from="alice@example.com",
        recipients=[
            RecipientOutcome(
                "+14155550100@fax.test", f"{reply} ok", account_id=account_id, accepted=reply == 250
            )
        ],
        reply_code=reply,
        errors=[] if reply == 250 else ["address is not allowed"],
    )


async def test_smtplog_list_and_get(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, store: Store, clock: Clock
) -> None:
    await store.write_smtplog(log_entry("mine-1", clock() - 20, tenant.account_id))
    await store.write_smtplog(log_entry("mine-2", clock() - 10, tenant.account_id, reply=550))
    await store.write_smtplog(log_entry("theirs", clock() - 5, other.account_id))
    await store.write_smtplog(log_entry("nobody", clock() - 1, None, reply=550))
    response = await get(client, tenant, "smtplog")
    body = SmtpLogListEnvelope.model_validate(response.json())
    assert [r.id for r in body.data] == ["mine-2", "mine-1"]
    row = response.json()["data"][0]
    assert row["result"] == "rejected" and row["error"] == "address is not allowed"
    assert row["from"] == "alice@example.com" and row["to"] == "+14155550100@fax.test"
    page = (await get(client, tenant, "smtplog", page_size=1)).json()
    assert [r["id"] for r in page["data"]] == ["mine-2"]
    rest = (await get(client, tenant, "smtplog", start_key=page["next_start_key"])).json()
    assert [r["id"] for r in rest["data"]] == ["mine-1"]
    one = await get(client, tenant, "smtplog/mine-1")
    assert SmtpLogEnvelope.model_validate(one.json()).data.peer_ip == "192.0.2.7"
    assert_error(await get(client, tenant, "smtplog/theirs"), 404)
    assert_error(await get(client, tenant, "smtplog/nobody"), 404)
    # The admin: every row, also those of no account.
    admin = await client.get("/v2/faxes/smtplog", headers=auth(ADMIN))
    assert [r["id"] for r in admin.json()["data"]] == ["nobody", "theirs", "mine-2", "mine-1"]
    assert (await client.get("/v2/faxes/smtplog/nobody", headers=auth(ADMIN))).status_code == 200
    mine = await client.get(faxes_url(tenant, "smtplog"), headers=auth(ADMIN))
    assert [r["id"] for r in mine.json()["data"]] == ["mine-2", "mine-1"]


async def test_paginate_false_reads_the_range_in_chunks(
    client: httpx.AsyncClient,
    tenant: Tenant,
    store: Store,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.api.paging.UNPAGINATED_CHUNK", 3)
    ids = [(await seed_fax(store, tenant, created=clock() - n, roles=())).id for n in range(8)]
    body = (await get(client, tenant, "outbox", paginate="false")).json()
    assert [r["id"] for r in body["data"]] == ids
    assert body["page_size"] == 8 and "next_start_key" not in body
    ascending = (await get(client, tenant, "outbox", paginate="false", ascending="true")).json()
    assert [r["id"] for r in ascending["data"]] == list(reversed(ids))
