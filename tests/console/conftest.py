"""The console over the real API app and a real store, spoken to over HTTP with httpx."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.store import Store
from tests.api.conftest import ADMIN, Created
from tests.conftest import Clock, Tenant, make_settings, make_tenant

BASE = "http://gw.test"
CONSOLE = "/console"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        http={"admin_token": ADMIN, "cursor_secret": "test-secret", "auth_failure_limit": 3},
    )


@pytest.fixture
def created() -> Created:
    return Created()


@pytest.fixture
def app(store: Store, settings: Settings, clock: Clock, created: Created) -> Starlette:
    return create_app(store, settings, clock, on_created=created)


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, as a browser does."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
async def other(store: Store) -> Tenant:
    return await make_tenant(store, name="globex", domain="fax.globex.test")


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, credential: str) -> httpx.Response:
    form = await client.get(f"{CONSOLE}/signin")
    token = hidden(form.text, "signin_token")
    return await client.post(
        f"{CONSOLE}/signin", data={"credential": credential, "signin_token": token}
    )


async def csrf_of(client: httpx.AsyncClient) -> str:
    page = await client.get(f"{CONSOLE}/smtplog")
    return hidden(page.text, "csrf")
