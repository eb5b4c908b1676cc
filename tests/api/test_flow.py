"""A Kazoo client's whole documented flow, with the lead's render stage and our fetcher behind
the API: create by URL, watch it leave ``outgoing``, download the PDF, resubmit, delete."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.config import Settings
from gateway.documents.pool import RenderPool
from gateway.fetch import fetch_document
from gateway.pipeline import RenderStage
from gateway.store import Store
from tests.api.conftest import assert_error, auth, faxes_url
from tests.api.docserver import LOCAL
from tests.conftest import Tenant


@pytest.fixture
async def stage(store: Store, settings: Settings) -> AsyncIterator[RenderStage]:
    pool = RenderPool(1, 60)
    fetcher = functools.partial(fetch_document, settings=LOCAL)
    yield RenderStage(store, pool, settings, fetcher=fetcher)
    await pool.close()


async def test_create_by_url_render_download_resubmit_delete(
    client: httpx.AsyncClient, tenant: Tenant, docs: str, stage: RenderStage
) -> None:
    data = {"from_number": "+14155550199", "to_number": "4155550100"}
    good = await client.put(
        faxes_url(tenant),
        headers=auth(tenant),
        json={"data": {**data, "document": {"url": f"{docs}/doc.pdf"}}},
    )
    blocked = await client.put(
        faxes_url(tenant),
        headers=auth(tenant),
        json={"data": {**data, "document": {"url": "http://169.254.169.254/latest/"}}},
    )
    assert good.status_code == blocked.status_code == 201
    await stage.run_until_idle()

    fax_id = good.json()["data"]["id"]
    fax = (await client.get(faxes_url(tenant, "outgoing", fax_id), headers=auth(tenant))).json()
    assert fax["data"]["status"] == "pending" and fax["data"]["pages"] == 2
    pdf = await client.get(
        faxes_url(tenant, "outgoing", fax_id, "attachment"), headers=auth(tenant)
    )
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")

    # A fetch the guard refuses fails its job with the reason: never stuck in attaching_files.
    failed_id = blocked.json()["data"]["id"]
    failed = (await client.get(faxes_url(tenant, "outbox", failed_id), headers=auth(tenant))).json()
    assert failed["data"]["status"] == "failed"
    assert "not allowed" in failed["data"]["error"]
    outbox = (await client.get(faxes_url(tenant, "outbox"), headers=auth(tenant))).json()
    assert [row["id"] for row in outbox["data"]] == [failed_id]

    again = await client.put(
        faxes_url(tenant, "outbox", failed_id),
        headers=auth(tenant),
        json={"action": "resubmit", "data": {"document": {"url": f"{docs}/doc.pdf"}}},
    )
    assert again.status_code == 201
    await stage.run_until_idle()
    new_id = again.json()["data"]["id"]
    new = (await client.get(faxes_url(tenant, "outbox", new_id), headers=auth(tenant))).json()
    assert new["data"]["status"] == "pending"

    for gone in (fax_id, failed_id, new_id):
        response = await client.delete(faxes_url(tenant, "outbox", gone), headers=auth(tenant))
        assert response.status_code == 200
        assert_error(await client.get(faxes_url(tenant, "outbox", gone), headers=auth(tenant)), 404)
