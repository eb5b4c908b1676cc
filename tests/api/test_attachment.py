"""GET/DELETE .../attachment: format by query or Accept, headers, and erasing the bytes."""

from __future__ import annotations

import httpx
import pytest

from gateway.api.attachments import chosen_format, content_disposition
from gateway.models import Direction, FaxStatus
from gateway.store import Store
from tests.api.conftest import assert_error, auth, count, faxes_url, seed_fax
from tests.conftest import Tenant

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "pdf"),
        ("*/*", "pdf"),
        ("text/plain, */*; q=0.01", "pdf"),
        (BROWSER, "pdf"),
        ("application/pdf", "pdf"),
        ("image/tiff", "tiff"),
        ("image/tiff, */*;q=0.1", "tiff"),
        ("application/pdf, image/tiff", "pdf"),
        ("application/pdf;q=0.5, image/tiff", "tiff"),
        ("image/tiff;q=0", "pdf"),
        ("image/tiff;q=abc", "pdf"),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    assert chosen_format(None, accept or "") == expected


def test_format_beats_accept_and_is_checked() -> None:
    assert chosen_format("TIF", "application/pdf") == "tiff"
    assert chosen_format("original", "image/tiff") == "original"
    with pytest.raises(Exception, match="validation"):
        chosen_format("docx", "")


def test_content_disposition_is_quoted() -> None:
    assert content_disposition("attachment", "fax.pdf") == 'attachment; filename="fax.pdf"'
    value = content_disposition("inline", 'Brief "März".pdf')
    assert value.startswith('inline; filename="Brief _M_rz_.pdf"')
    assert "filename*=UTF-8''Brief%20%22M%C3%A4rz%22.pdf" in value


async def test_download_each_format(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.COMPLETED)
    url = faxes_url(tenant, "outbox", fax.id, "attachment")
    pdf = await client.get(url, headers=auth(tenant))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    disposition = pdf.headers["content-disposition"]
    assert disposition == 'attachment; filename="fax_document_2027-01-15_08-00-00.pdf"'
    tiff = await client.get(url, headers={**auth(tenant), "Accept": "image/tiff"})
    assert tiff.headers["content-type"] == "image/tiff" and tiff.content[:4] == b"II*\x00"
    assert tiff.headers["content-disposition"].endswith('.tiff"')
    by_query = await client.get(url, params={"format": "tiff", "auth_token": tenant.auth_token})
    assert by_query.content == tiff.content  # a plain <a href> download link works
    original = await client.get(
        url, params={"format": "original", "disposition": "inline"}, headers=auth(tenant)
    )
    assert original.headers["content-disposition"] == 'inline; filename="letter.pdf"'
    assert_error(await client.get(url, params={"format": "docx"}, headers=auth(tenant)), 400)
    # Also from the other folder name.
    same = await client.get(
        faxes_url(tenant, "outgoing", fax.id, "attachment"), headers=auth(tenant)
    )
    assert same.content == pdf.content


async def test_pdf_is_made_from_the_tiff_when_missing(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    received = await seed_fax(
        store, tenant, FaxStatus.COMPLETED, Direction.INBOUND, roles=("tiff",)
    )
    response = await client.get(
        faxes_url(tenant, "inbox", received.id, "attachment"), headers=auth(tenant)
    )
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF-")


async def test_missing_documents_are_404(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    waiting = await seed_fax(store, tenant, FaxStatus.ATTACHING_FILES, roles=("original",))
    url = faxes_url(tenant, "outgoing", waiting.id, "attachment")
    assert (
        "not rendered yet"
        in assert_error(await client.get(url, headers=auth(tenant)), 404)["data"]["message"]
    )
    ok = await client.get(url, params={"format": "original"}, headers=auth(tenant))
    assert ok.status_code == 200


async def test_erase_keeps_the_record(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    fax = await seed_fax(store, tenant, FaxStatus.COMPLETED, pages=1)
    url = faxes_url(tenant, "outbox", fax.id, "attachment")
    response = await client.delete(url, headers=auth(tenant))
    assert response.status_code == 200
    assert response.json()["data"] == {}
    assert await count(store, "SELECT count(*) FROM fax_documents WHERE fax_id = ?", fax.id) == 0
    assert await count(store, "SELECT count(*) FROM documents") == 0
    kept = await client.get(faxes_url(tenant, "outbox", fax.id), headers=auth(tenant))
    assert kept.status_code == 200 and kept.json()["data"]["pages"] == 1
    assert_error(await client.get(url, headers=auth(tenant)), 404)
    assert (await client.delete(url, headers=auth(tenant))).status_code == 200  # idempotent


async def test_erase_refuses_active_jobs(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    for status in (FaxStatus.PENDING, FaxStatus.PROCESSING, FaxStatus.ATTACHING_FILES):
        fax = await seed_fax(store, tenant, status)
        url = faxes_url(tenant, "outgoing", fax.id, "attachment")
        assert_error(await client.delete(url, headers=auth(tenant)), 409)
        assert (
            await count(store, "SELECT count(*) FROM fax_documents WHERE fax_id = ?", fax.id) == 3
        )
