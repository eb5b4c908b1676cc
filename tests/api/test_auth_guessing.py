"""Credential guessing over HTTP is slowed per client address, never per account.

An address that sent ``auth_failure_limit`` wrong tokens or API keys within
``auth_failure_window_s`` is answered 429 with ``Retry-After`` until the oldest of them leaves
the window, whatever it sends; a legitimate user of the same account elsewhere is unaffected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.config import Settings
from gateway.store import Store
from tests.api.conftest import ADMIN, BASE, assert_error, auth, faxes_url
from tests.conftest import Clock, Tenant, make_settings

LIMIT = 3
WINDOW_S = 60
ATTACKER = ("203.0.113.66", 40000)  # httpx's ASGI transport says 127.0.0.1 unless told
USER = ("198.51.100.7", 40000)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        http={
            "admin_token": ADMIN,
            "cursor_secret": "test-secret",
            "auth_failure_limit": LIMIT,
            "auth_failure_window_s": WINDOW_S,
        },
    )


@pytest.fixture
async def attacker(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=ATTACKER)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


@pytest.fixture
async def user(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=USER)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


async def guess(client: httpx.AsyncClient, tenant: Tenant, times: int) -> list[int]:
    codes = []
    for n in range(times):
        response = await client.get(faxes_url(tenant, "outbox"), headers=auth(f"guess-{n}"))
        codes.append(response.status_code)
    return codes


def assert_too_many(response: httpx.Response, retry_after: int) -> None:
    body = assert_error(response, 429)
    assert response.headers["retry-after"] == str(retry_after)
    assert body["message"] == (
        f"too many failed authentication attempts; retry after {retry_after} s"
    )
    assert body["data"] == {}


async def test_wrong_tokens_past_the_limit_are_429_with_retry_after(
    attacker: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert await guess(attacker, tenant, LIMIT) == [401] * LIMIT
    assert_too_many(await attacker.get(faxes_url(tenant, "outbox"), headers=auth("x")), WINDOW_S)


async def test_a_blocked_address_is_refused_even_with_the_right_token(
    attacker: httpx.AsyncClient, tenant: Tenant
) -> None:
    # Otherwise the answer to a right guess would tell the attacker it was right.
    await guess(attacker, tenant, LIMIT)
    response = await attacker.get(faxes_url(tenant, "outbox"), headers=auth(tenant))
    assert_too_many(response, WINDOW_S)
    response = await attacker.get(faxes_url(tenant, "outbox"), headers=auth(ADMIN))
    assert_too_many(response, WINDOW_S)


async def test_the_same_accounts_user_at_another_address_still_gets_in(
    attacker: httpx.AsyncClient, user: httpx.AsyncClient, tenant: Tenant
) -> None:
    await guess(attacker, tenant, LIMIT + 5)
    response = await user.get(faxes_url(tenant, "outbox"), headers=auth(tenant))
    assert response.status_code == 200, response.text
    # Their own success clears nothing of the attacker's count.
    assert_too_many(await attacker.get(faxes_url(tenant, "outbox"), headers=auth("x")), WINDOW_S)


async def test_after_the_window_the_address_may_try_again(
    attacker: httpx.AsyncClient, tenant: Tenant, clock: Clock
) -> None:
    await guess(attacker, tenant, LIMIT)
    clock.advance(WINDOW_S - 20)
    assert_too_many(await attacker.get(faxes_url(tenant, "outbox"), headers=auth("x")), 20)
    clock.advance(20)
    response = await attacker.get(faxes_url(tenant, "outbox"), headers=auth(tenant))
    assert response.status_code == 200, response.text


async def test_a_success_does_not_reset_the_count(
    attacker: httpx.AsyncClient, tenant: Tenant
) -> None:
    # An attacker may hold a valid token of an account of their own.
    for n in range(LIMIT):
        ok = await attacker.get(faxes_url(tenant, "outbox"), headers=auth(tenant))
        assert ok.status_code == 200
        await attacker.get(faxes_url(tenant, "outbox"), headers=auth(f"guess-{n}"))
    assert_too_many(await attacker.get(faxes_url(tenant, "outbox"), headers=auth("x")), WINDOW_S)


async def test_no_token_at_all_is_not_a_guess(attacker: httpx.AsyncClient, tenant: Tenant) -> None:
    for _ in range(LIMIT + 2):
        assert_error(await attacker.get(faxes_url(tenant, "outbox")), 401)
    response = await attacker.get(faxes_url(tenant, "outbox"), headers=auth(tenant))
    assert response.status_code == 200


async def test_wrong_api_keys_count_and_are_refused_the_same_way(
    attacker: httpx.AsyncClient, user: httpx.AsyncClient, store: Store
) -> None:
    account, _, api_key = await store.create_account("sdk")
    for n in range(LIMIT):
        wrong = {"data": {"api_key": f"guess-{n}"}}
        assert_error(await attacker.put("/v2/api_auth", json=wrong), 401)
    right = {"data": {"api_key": api_key}}
    assert_too_many(await attacker.put("/v2/api_auth", json=right), WINDOW_S)
    response = await user.put("/v2/api_auth", json=right)
    assert response.status_code == 201, response.text
    assert response.json()["data"] == {"account_id": account.id}


async def test_key_and_token_guesses_share_one_count(
    attacker: httpx.AsyncClient, tenant: Tenant
) -> None:
    await guess(attacker, tenant, LIMIT - 1)
    assert_error(await attacker.put("/v2/api_auth", json={"data": {"api_key": "nope"}}), 401)
    assert_too_many(await attacker.get(faxes_url(tenant, "outbox"), headers=auth("x")), WINDOW_S)


def test_the_api_description_says_which_operations_answer_429() -> None:
    from gateway.api.openapi import build_openapi

    for path, operations in build_openapi()["paths"].items():
        for method, operation in operations.items():
            checks_credentials = "401" in operation["responses"]
            assert ("429" in operation["responses"]) is checks_credentials, (method, path)
