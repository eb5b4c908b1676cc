"""Tokens from ``PUT /v2/api_auth`` expire, and an account holds a bounded number of them.

The account's own auth token (printed once by ``accounts create``) is not one of them: it
neither expires nor is ever dropped to make room.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from gateway.store.schema import MIGRATIONS
from tests.api.conftest import ADMIN, assert_error, auth, faxes_url
from tests.conftest import Clock, Tenant, make_settings
from tests.stores import raw

TTL_S = 3600
KEEP = 3


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        http={
            "admin_token": ADMIN,
            "cursor_secret": "test-secret",
            "token_ttl_s": TTL_S,
            "max_tokens_per_account": KEEP,
            # These tests present dropped and expired tokens on purpose, more than 10 times.
            "auth_failure_limit": 1000,
        },
    )


async def log_in(client: httpx.AsyncClient, api_key: str) -> str:
    response = await client.put("/v2/api_auth", json={"data": {"api_key": api_key}})
    assert response.status_code == 201, response.text
    return str(response.json()["auth_token"])


async def works(client: httpx.AsyncClient, account_id: str, token: str) -> bool:
    response = await client.get(faxes_url(account_id, "outbox"), headers=auth(token))
    if response.status_code == 401:
        assert_error(response, 401)
        return False
    assert response.status_code == 200, response.text
    return True


async def test_an_issued_token_expires_after_token_ttl_s(
    client: httpx.AsyncClient, store: Store, clock: Clock
) -> None:
    account, permanent, api_key = await store.create_account("sdk")
    token = await log_in(client, api_key)
    clock.advance(TTL_S - 1)
    assert await works(client, account.id, token)
    clock.advance(1)
    assert not await works(client, account.id, token)  # the SDK logs in again on the 401
    assert await works(client, account.id, permanent)
    assert await works(client, account.id, await log_in(client, api_key))


async def test_beyond_the_bound_the_oldest_issued_tokens_are_dropped(
    client: httpx.AsyncClient, store: Store, clock: Clock, tenant: Tenant
) -> None:
    account, permanent, api_key = await store.create_account("sdk")
    tokens = []
    for _ in range(KEEP + 2):
        tokens.append(await log_in(client, api_key))
        clock.advance(1)
    assert [await works(client, account.id, t) for t in tokens] == [False] * 2 + [True] * KEEP
    assert await works(client, account.id, permanent)
    assert await works(client, tenant.account_id, tenant.auth_token)  # other accounts untouched


async def test_an_account_holds_at_most_the_bound_of_issued_tokens(
    client: httpx.AsyncClient, store: Store, clock: Clock
) -> None:
    account, _, api_key = await store.create_account("sdk")
    for _ in range(KEEP * 4):
        await log_in(client, api_key)
    clock.advance(TTL_S)
    await log_in(client, api_key)  # expired ones go too, not only those over the bound
    rows = await raw(store).fetchall(
        "SELECT kind, count(*) FROM api_tokens WHERE account_id = ? GROUP BY kind ORDER BY kind",
        (account.id,),
    )
    # The permanent auth token, the one just issued, and the API key.
    assert [tuple(row) for row in rows] == [("api_key", 1), ("auth_token", 2)]


async def test_tokens_issued_before_the_upgrade_expire_too(tmp_path: Path) -> None:
    before = next(n for n, m in enumerate(MIGRATIONS) if "api_tokens ADD COLUMN expires" in m)
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("\n".join(MIGRATIONS[:before]) + f"\nPRAGMA user_version={before};")
        db.execute("INSERT INTO accounts (id, name, realm, created) VALUES ('a1', 'old', NULL, 0)")
        db.executemany(
            "INSERT INTO api_tokens (token_hash, account_id, kind, created) VALUES (?, 'a1', ?, ?)",
            [
                ("h-permanent", "auth_token", 0),
                ("h-key", "api_key", 0),
                ("h-issued", "auth_token", 0),
            ],
        )
    store = SqliteStore(Database(path, "normal"), Clock(100_000))
    await store.open()
    try:
        rows = await raw(store).fetchall(
            "SELECT token_hash, expires FROM api_tokens ORDER BY token_hash"
        )
        assert {row[0]: row[1] for row in rows} == {
            "h-issued": 86400,  # the default lifetime, counted from when it was issued
            "h-key": None,
            "h-permanent": None,  # the account's first auth token is the one it was made with
        }
    finally:
        await store.close()
