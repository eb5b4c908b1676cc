"""Auth, the error shape of routing failures, and the envelope's fixed parts."""

from __future__ import annotations

import httpx

from gateway.store import Store
from tests.api.conftest import ADMIN, assert_error, auth, faxes_url
from tests.conftest import Tenant


async def test_missing_and_bad_tokens_are_401(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = faxes_url(tenant, "outbox")
    for headers in (
        {},
        {"X-Auth-Token": "nope"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic " + tenant.auth_token},
        {"X-Auth-Token": "x" * 5000},
    ):
        body = assert_error(await client.get(url, headers=headers), 401)
        assert body["message"] == "invalid_credentials"


async def test_token_from_header_bearer_or_query(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = faxes_url(tenant, "outbox")
    for kwargs in (
        {"headers": {"X-Auth-Token": tenant.auth_token}},
        {"headers": {"Authorization": f"Bearer {tenant.auth_token}"}},
        {"params": {"auth_token": tenant.auth_token}},
    ):
        response = await client.get(url, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success"
        assert body["auth_token"] == tenant.auth_token  # Kazoo echoes it
        assert body["request_id"] and body["revision"]


async def test_another_accounts_path_is_404_like_a_missing_one(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    theirs = assert_error(await client.get(faxes_url(other, "outbox"), headers=auth(tenant)), 404)
    missing = assert_error(
        await client.get(faxes_url("0" * 32, "outbox"), headers=auth(tenant)), 404
    )
    assert theirs["message"] == missing["message"]


async def test_admin_token_sees_every_account(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    for who in (tenant, other):
        response = await client.get(faxes_url(who, "outbox"), headers=auth(ADMIN))
        assert response.status_code == 200
    assert_error(await client.get(faxes_url("f" * 32, "outbox"), headers=auth(ADMIN)), 404)


async def test_api_auth_exchanges_an_api_key(client: httpx.AsyncClient, store: Store) -> None:
    account, _, api_key = await store.create_account("sdk")
    response = await client.put("/v2/api_auth", json={"data": {"api_key": api_key}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["data"] == {"account_id": account.id}
    token = body["auth_token"]
    listing = await client.get(faxes_url(account.id, "outbox"), headers=auth(token))
    assert listing.status_code == 200
    who = await client.get("/v2/api_auth", headers=auth(token))
    assert who.json()["data"] == {"account_id": account.id, "admin": False}
    # An auth token is not an API key, and a wrong key is 401 (clients re-login on it).
    assert_error(await client.put("/v2/api_auth", json={"data": {"api_key": token}}), 401)
    bad = assert_error(await client.put("/v2/api_auth", json={"data": {}}), 400)
    assert "data.api_key" in bad["data"]
    assert_error(await client.put("/v2/api_auth", content=b"{not json"), 400)


async def test_unknown_route_wrong_method_and_big_body(
    client: httpx.AsyncClient, tenant: Tenant, settings
) -> None:
    assert_error(await client.get("/v2/nothing/here"), 404)
    assert_error(await client.get(faxes_url(tenant, "trash"), headers=auth(tenant)), 404)
    wrong = assert_error(await client.post(faxes_url(tenant, "outbox"), headers=auth(tenant)), 405)
    assert wrong["message"] == "method_not_allowed"
    response = await client.delete(faxes_url(tenant), headers=auth(tenant))
    assert_error(response, 405)
    assert response.headers["allow"] == "PUT"
    limit = settings.http.max_body_bytes
    big = await client.put(
        faxes_url(tenant),
        headers={**auth(tenant), "Content-Type": "application/json"},
        content=b" " * (limit + 1),
    )
    body = assert_error(big, 413)
    assert body["data"]["file"]["maxSize"]["target"] == limit


async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, tenant: Tenant, settings
) -> None:
    limit = settings.http.max_body_bytes

    async def chunks():
        for _ in range(limit // (1024 * 1024) + 2):
            yield b"x" * (1024 * 1024)

    response = await client.put(faxes_url(tenant), headers=auth(tenant), content=chunks())
    assert_error(response, 413)


async def test_trailing_slash_cors_and_request_id(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get(
        faxes_url(tenant, "outgoing") + "/",
        headers={**auth(tenant), "Origin": "https://portal.example", "X-Request-ID": "abc-123"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    preflight = await client.options(
        faxes_url(tenant),
        headers={
            "Origin": "https://portal.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-auth-token, content-type",
        },
    )
    assert preflight.status_code == 200
    assert "x-auth-token" in preflight.headers["access-control-allow-headers"].lower()


async def test_healthz_and_openapi_are_public(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    spec = await client.get("/v2/openapi.json")
    assert spec.status_code == 200
    assert spec.headers["content-type"] == "application/json"
    assert spec.json()["openapi"].startswith("3.1")


async def test_admin_only_routes_refuse_account_tokens(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert_error(await client.get("/v2/faxes/smtplog", headers=auth(tenant)), 403)
    assert (await client.get("/v2/faxes/smtplog", headers=auth(ADMIN))).status_code == 200


async def test_a_failing_store_is_503_not_500(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    await store.close()
    body = assert_error(await client.get("/healthz"), 503)
    assert body["message"] == "unhealthy: store, writer"
    assert_error(await client.get(faxes_url(tenant, "outbox"), headers=auth(tenant)), 503)
