"""Faxboxes over HTTP: create, read, replace, patch, delete, and their validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway import credentials
from gateway.api.shapes import FaxboxEnvelope, FaxboxListEnvelope
from gateway.store import Store
from tests.api.conftest import assert_error, auth
from tests.conftest import Tenant


def boxes_url(tenant: Tenant, *rest: str) -> str:
    return "/".join([f"/v2/accounts/{tenant.account_id}/faxboxes", *rest])


async def send(
    client: httpx.AsyncClient, tenant: Tenant, method: str, *path: str, **data: Any
) -> httpx.Response:
    return await client.request(
        method, boxes_url(tenant, *path), headers=auth(tenant), json={"data": data}
    )


async def test_create_read_list(client: httpx.AsyncClient, tenant: Tenant, store: Store) -> None:
    response = await send(
        client,
        tenant,
        "PUT",
        name="Sales",
        caller_id="415 555 0111",
        caller_name="Sales Dept",
        fax_number="+1 (415) 555-0112",
        smtp_permission_list=["*@example.com", "re:.*@corp\\.example"],
        notifications={
            "outbound": {"email": {"send_to": "out@acme.test"}},
            "inbound": {"email": {"send_to": ["in@acme.test", "in2@acme.test"]}},
        },
        retries=2,
        media={"fax_option": True},
        smtp_password="correct horse battery",
    )
    assert response.status_code == 201, response.text
    box = FaxboxEnvelope.model_validate(response.json()).data
    assert box.smtp_email_address.endswith(".fax.test") and len(box.smtp_email_address) == 17
    assert box.caller_id == "+14155550111" and box.fax_number == "+14155550112"
    assert box.smtp_permission_list == ["@example.com", "re:.*@corp\\.example"]
    assert box.notifications["inbound"]["email"]["send_to"] == ["in@acme.test", "in2@acme.test"]
    assert box.notifications["outbound"]["email"]["send_to"] == ["out@acme.test"]
    assert box.smtp_password_set is True
    assert "smtp_password" not in response.json()["data"]
    assert "correct horse" not in response.text and "scrypt" not in response.text
    stored = await store.faxbox_password_hash(box.id)
    assert stored and credentials.verify_password("correct horse battery", stored)
    one = await client.get(boxes_url(tenant, box.id), headers=auth(tenant))
    assert one.json()["data"]["name"] == "Sales"
    listing = FaxboxListEnvelope.model_validate(
        (await client.get(boxes_url(tenant), headers=auth(tenant))).json()
    )
    assert sorted(b.name for b in listing.data) == ["Sales", "acme"]


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, tenant: Tenant) -> None:
    box = tenant.faxbox
    response = await send(client, tenant, "PATCH", box.id, caller_name="New Name", retries=None)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["caller_name"] == "New Name"
    assert data["retries"] == 3  # null: back to the default
    assert data["caller_id"] == box.caller_id and data["fax_header"] == box.fax_header
    assert data["custom_smtp_email_address"] == box.custom_smtp_email_address
    assert_error(await send(client, tenant, "PATCH", box.id, name=None), 400)


async def test_post_replaces_the_whole_faxbox(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    box = tenant.faxbox
    await store.update_faxbox(box, credentials.hash_password("keep-me-please"))
    response = await send(client, tenant, "POST", box.id, name="Replaced")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["name"] == "Replaced"
    assert data["caller_id"] is None and data["smtp_permission_list"] == []
    assert data["custom_smtp_email_address"] is None
    assert data["smtp_email_address"] == box.smtp_email_address  # generated: never replaced
    assert data["smtp_password_set"] is True  # write-only: kept unless sent
    cleared = await send(client, tenant, "PATCH", box.id, smtp_password=None)
    assert cleared.json()["data"]["smtp_password_set"] is False
    assert_error(await send(client, tenant, "POST", box.id, caller_name="no name"), 400)


async def test_custom_address_must_be_unique(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    taken = other.faxbox.custom_smtp_email_address
    for address in (taken, taken.upper(), other.faxbox.smtp_email_address):
        body = assert_error(
            await send(client, tenant, "PUT", name="x", custom_smtp_email_address=address), 400
        )
        assert "unique" in body["data"]["custom_smtp_email_address"]
        patched = assert_error(
            await send(
                client, tenant, "PATCH", tenant.faxbox.id, custom_smtp_email_address=address
            ),
            400,
        )
        assert "unique" in patched["data"]["custom_smtp_email_address"]
    # Its own address is no conflict.
    same = await send(
        client,
        tenant,
        "PATCH",
        tenant.faxbox.id,
        custom_smtp_email_address=tenant.faxbox.custom_smtp_email_address,
    )
    assert same.status_code == 200
    reserved = await send(
        client, tenant, "PUT", name="x", custom_smtp_email_address="0123abcd.fax.test"
    )
    assert "pattern" in assert_error(reserved, 400)["data"]["custom_smtp_email_address"]


@pytest.mark.parametrize(
    "address", ["fax.test", "FAX.Test.", "sales.fax.test", "a.b.fax.test", "gw.test"]
)
async def test_a_tenant_cannot_claim_the_gateways_own_domain(
    client: httpx.AsyncClient, other: Tenant, address: str
) -> None:
    created = await send(client, other, "PUT", name="x", custom_smtp_email_address=address)
    body = assert_error(created, 400)
    assert (
        "belongs to this gateway" in body["data"]["custom_smtp_email_address"]["pattern"]["message"]
    )
    patched = await send(client, other, "PATCH", other.faxbox.id, custom_smtp_email_address=address)
    assert "pattern" in assert_error(patched, 400)["data"]["custom_smtp_email_address"]


async def test_a_hostile_sender_rule_is_refused_saying_why(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    rules = ["*@example.com", "re:(a+)\\1@example\\.com"]
    body = assert_error(
        await send(client, tenant, "PUT", name="x", smtp_permission_list=rules), 400
    )
    message = body["data"]["smtp_permission_list"]["pattern"]["message"]
    assert "linear time" in message and "backreferences" in message


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "minLength"),
        ({"name": "x" * 129}, "name", "maxLength"),
        ({"name": "x", "caller_id": "call me"}, "caller_id", "format"),
        ({"name": "x", "smtp_permission_list": ["re:("]}, "smtp_permission_list", "pattern"),
        ({"name": "x", "smtp_permission_list": "a@b.c"}, "smtp_permission_list", "type"),
        ({"name": "x", "retries": 0}, "retries", "minimum"),
        (
            {"name": "x", "custom_smtp_email_address": "not a domain"},
            "custom_smtp_email_address",
            "pattern",
        ),
        ({"name": "x", "owner_email": "nobody"}, "owner_email", "format"),
        ({"name": "x", "fax_timezone": "Nowhere/Town"}, "fax_timezone", "format"),
        ({"name": "x", "paper": "legal"}, "paper", "enum"),
        ({"name": "x", "default_region": "USA"}, "default_region", "pattern"),
        ({"name": "x", "smtp_password": "short"}, "smtp_password", "minLength"),
    ],
)
async def test_validation(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any], field: str, rule: str
) -> None:
    body = assert_error(await send(client, tenant, "PUT", **fields), 400)
    assert rule in body["data"][field], body


async def test_delete_keeps_its_faxes(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    from tests.api.conftest import seed_fax

    fax = await seed_fax(store, tenant)
    response = await client.delete(boxes_url(tenant, tenant.faxbox.id), headers=auth(tenant))
    assert response.status_code == 200 and response.json()["data"]["id"] == tenant.faxbox.id
    assert_error(await client.get(boxes_url(tenant, tenant.faxbox.id), headers=auth(tenant)), 404)
    assert (await store.get_fax(fax.id)).faxbox_id is None
    assert_error(
        await client.delete(boxes_url(tenant, tenant.faxbox.id), headers=auth(tenant)), 404
    )


async def test_bodies_must_be_json(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {**auth(tenant), "Content-Type": "text/html"}
    response = await client.put(boxes_url(tenant), headers=headers, content=b"<b>hi</b>")
    assert_error(response, 415)
    response = await client.put(boxes_url(tenant), headers=auth(tenant), content=b"[]")
    assert_error(response, 400)
