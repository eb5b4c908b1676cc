"""Office documents uploaded through the HTTP API (``PUT .../faxes`` multipart): converted as at
SMTP intake and stored as their PDF; refused in Kazoo's error shape when they cannot be."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from docgen import LETTER, pdf, text_content
from officegen import docx, stand_in

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.documents.office import OfficeConverter
from gateway.documents.office_process import LibreOfficeConverter, OfficeLimits
from gateway.models import DocumentKind
from gateway.store import Store
from tests.conftest import Clock, Tenant

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
Put = Callable[[OfficeConverter | None, bytes], Awaitable[httpx.Response]]


@pytest.fixture
async def put_docx(
    store: Store, settings: Settings, clock: Clock, tenant: Tenant
) -> AsyncIterator[Put]:
    clients: list[httpx.AsyncClient] = []

    async def put(office: OfficeConverter | None, document: bytes) -> httpx.Response:
        app = create_app(store, settings, clock, office=office)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw.test"
        )
        clients.append(client)
        boundary = "b0und4ry"
        meta = json.dumps({"data": {"from_number": "1", "to_number": "4155550100"}}).encode()
        body = (
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode()
            + meta
            + f"\r\n--{boundary}\r\nContent-Type: {DOCX}\r\n"
            'Content-Disposition: attachment; filename="letter.docx"\r\n\r\n'.encode()
            + document
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return await client.put(
            f"/v2/accounts/{tenant.account_id}/faxes",
            content=body,
            headers={
                "X-Auth-Token": tenant.auth_token,
                "Content-Type": f"multipart/mixed; boundary={boundary}",
            },
        )

    yield put
    for client in clients:
        await client.aclose()


async def test_uploaded_docx_is_stored_as_its_pdf(
    put_docx: Put, store: Store, tmp_path: Path
) -> None:
    made = tmp_path / "made.pdf"
    made.write_bytes(pdf([(*LETTER, text_content(["one"])), (*LETTER, text_content(["two"]))]))
    converter = LibreOfficeConverter(stand_in(tmp_path, f'cp "{made}" "$OUT/document.pdf"'), 1)
    response = await put_docx(converter, docx(["Hello"]))
    assert response.status_code == 201, response.text
    [stored] = await store.fax_documents(response.json()["data"]["id"])
    assert (stored.kind, stored.pages, stored.filename) == (DocumentKind.PDF, 2, "letter.docx")


async def test_no_libreoffice_is_a_400_saying_so(
    put_docx: Put, store: Store, tenant: Tenant
) -> None:
    response = await put_docx(None, docx(["Hello"]))
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    message = body["data"]["document"]["invalid"]["message"]
    assert "office documents need LibreOffice on this gateway" in message
    assert await store.recent_faxes(tenant.account_id, 10) == []


async def test_a_crashing_conversion_is_a_400_with_the_reason(
    put_docx: Put, tmp_path: Path
) -> None:
    converter = LibreOfficeConverter(stand_in(tmp_path, "kill -SEGV $$"), 1)
    response = await put_docx(converter, docx(["Hello"]))
    assert response.status_code == 400
    invalid = response.json()["data"]["document"]["invalid"]
    assert invalid == {"message": "LibreOffice crashed (signal 11)", "part": "letter.docx"}


async def test_every_slot_busy_is_a_503_to_retry(put_docx: Put, tmp_path: Path) -> None:
    converter = LibreOfficeConverter(stand_in(tmp_path, "exit 0"), 1, OfficeLimits(slot_wait_s=0))
    converter._slots.acquire()
    response = await put_docx(converter, docx(["Hello"]))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert response.json()["status"] == "error"
    assert "slot" in response.json()["data"]["message"]
