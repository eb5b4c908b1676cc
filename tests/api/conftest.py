from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.api.app import create_app
from gateway.api.server import serve_http
from gateway.config import HttpSettings, Settings
from gateway.models import Direction, DocumentKind, FaxStatus, NewFax, SourceDocument
from gateway.store import Store
from tests.api.docserver import doc_server_app
from tests.builders import pdf_bytes, tiff_bytes
from tests.conftest import Clock, Tenant, make_settings, make_tenant
from tests.stores import link_new_document, raw

ADMIN = "admin-token-for-tests-0123456789"
BASE = "http://gw.test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, http={"admin_token": ADMIN, "cursor_secret": "test-secret"})


@dataclass
class Created:
    """Counts on_created() calls: the daemon's hook to wake the render stage."""

    calls: int = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def created() -> Created:
    return Created()


@pytest.fixture
def app(store: Store, settings: Settings, clock: Clock, created: Created) -> Starlette:
    return create_app(store, settings, clock, on_created=created)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


@pytest.fixture
async def docs() -> AsyncIterator[str]:
    """The base URL of a document server on 127.0.0.1 (see ``tests.api.docserver``)."""
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    settings = HttpSettings(port=0, shutdown_timeout_s=1)
    task = asyncio.create_task(serve_http(doc_server_app(), settings, stop, ready.set_result))
    port = await asyncio.wait_for(ready, 10)
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def other(store: Store) -> Tenant:
    """A second account, for the no-leak tests."""
    return await make_tenant(store, name="globex", domain="fax.globex.test")


def auth(tenant: Tenant | str) -> dict[str, str]:
    token = tenant if isinstance(tenant, str) else tenant.auth_token
    return {"X-Auth-Token": token}


def faxes_url(tenant: Tenant | str, *rest: str) -> str:
    account = tenant if isinstance(tenant, str) else tenant.account_id
    return "/".join([f"/v2/accounts/{account}/faxes", *rest])


@dataclass
class Seeded:
    id: str
    account_id: str
    direction: Direction
    status: FaxStatus
    roles: list[str] = field(default_factory=list)


async def seed_fax(
    store: Store,
    tenant: Tenant,
    status: FaxStatus = FaxStatus.COMPLETED,
    direction: Direction = Direction.OUTBOUND,
    created: float | None = None,
    roles: tuple[str, ...] = ("original", "tiff", "pdf"),
    to_number: str = "+14155550100",
    **columns: Any,
) -> Seeded:
    """A fax in any state, with stored documents by role (tests poke the database directly)."""
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            to_number=to_number,
            from_number="+14155550199",
            faxbox_id=tenant.faxbox.id,
            source="api",
        )
    )
    values: dict[str, Any] = {"status": status.value, "direction": direction.value, **columns}
    if created is not None:
        values["created"] = created
    sets = ", ".join(f"{name} = ?" for name in values)
    documents = {
        "original": SourceDocument(DocumentKind.PDF, pdf_bytes(1), "letter.pdf", 1),
        "tiff": SourceDocument(DocumentKind.TIFF, tiff_bytes(1), f"{fax_id}.tiff", 1),
        "pdf": SourceDocument(DocumentKind.PDF, pdf_bytes(1, label="Fax"), f"{fax_id}.pdf", 1),
    }
    await raw(store).execute(f"UPDATE faxes SET {sets} WHERE id = ?", (*values.values(), fax_id))
    for role in roles:
        await link_new_document(store, fax_id, role, 0, documents[role])
    return Seeded(fax_id, tenant.account_id, direction, status, list(roles))


async def count(store: Store, sql: str, *params: Any) -> int:
    row = await raw(store).fetchone(sql, params)
    assert row is not None
    return int(row[0])


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The Kazoo error shape, exactly: returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "error"
    assert body["error"] == str(status)
    assert isinstance(body["message"], str)
    assert isinstance(body["data"], dict)
    return dict(body)
