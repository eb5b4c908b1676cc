"""PUT .../faxes: by document.url, by upload (multipart/mixed, form-data, base64), and every
way a request can be wrong."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from gateway.api.shapes import FaxEnvelope
from gateway.models import FaxStatus
from gateway.store import Store
from tests.api.conftest import Created, assert_error, auth, faxes_url
from tests.builders import corrupt_pdf_bytes, docx_bytes, pdf_bytes, tiff_bytes
from tests.conftest import Tenant, make_tenant
from tests.malformed import (
    encrypted_pdf,
    pdf_with_unknown_security_handler,
    png,
    tiff_with_ifd_loop,
    truncated_jpeg,
)
from tests.stores import raw

URL_FAX = {
    "document": {"url": "http://docs.example.com/fax.pdf", "method": "get"},
    "retries": 3,
    "from_name": "Test Fax",
    "from_number": "18884732963",
    "to_name": "To Name",
    "to_number": "18884732963",
}


def mixed(
    parts: list[tuple[dict[str, str], bytes]], boundary: str = "b0und4ry"
) -> tuple[str, bytes]:
    """A multipart/mixed body as Kazoo's clients build it."""
    body = b""
    for headers, content in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        body += f"--{boundary}\r\n".encode() + head + b"\r\n" + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/mixed; boundary={boundary}", body


def json_part(data: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, json.dumps({"data": data}).encode()


async def put(
    client: httpx.AsyncClient, tenant: Tenant, path: str = "", **kwargs: Any
) -> httpx.Response:
    headers = {**auth(tenant), **kwargs.pop("headers", {})}
    return await client.put(faxes_url(tenant, *([path] if path else [])), headers=headers, **kwargs)


async def test_create_by_url(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, created: Created
) -> None:
    response = await put(client, tenant, json={"data": URL_FAX})
    assert response.status_code == 201, response.text
    body = FaxEnvelope.model_validate(response.json())
    fax = body.data
    assert fax.status == "attaching_files"
    assert fax.to_number == "+18884732963"  # E.164
    assert fax.retries == 3 and fax.attempts == 0
    assert fax.document == {"url": "http://docs.example.com/fax.pdf", "method": "get"}
    assert fax.tx_result is not None and fax.tx_result.success is False
    assert response.headers["location"].endswith(f"/faxes/outgoing/{fax.id}")
    # 201 only after the commit: the job is there, and the render stage was woken.
    stored = await store.get_fax(fax.id, tenant.account_id)
    assert stored.status is FaxStatus.ATTACHING_FILES
    assert stored.document_request == URL_FAX["document"]
    assert created.calls == 1


async def test_create_like_curl_d_and_on_the_alias(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = json.dumps({"data": URL_FAX}).encode()
    for path in ("", "outgoing", "outgoing/"):
        response = await put(
            client,
            tenant,
            path,
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 201, (path, response.text)


async def test_create_by_multipart_mixed_upload(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    data = {k: v for k, v in URL_FAX.items() if k != "document"}
    ctype, body = mixed(
        [
            json_part(data),
            ({"Content-Type": "application/pdf"}, pdf_bytes(2)),
            (
                {"Content-Type": "image/tiff", "Content-Disposition": 'inline; filename="p.tif"'},
                tiff_bytes(1),
            ),
        ]
    )
    response = await put(client, tenant, content=body, headers={"Content-Type": ctype})
    assert response.status_code == 201, response.text
    fax_id = response.json()["data"]["id"]
    originals = await store.fax_documents(fax_id, "original")
    assert [(d.kind.value, d.pages) for d in originals] == [("pdf", 2), ("tiff", 1)]
    assert originals[1].filename == "p.tif"
    assert (await store.get_fax(fax_id)).document_request is None


async def test_create_by_form_data_like_curl_F(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    data = json.dumps({"data": {k: v for k, v in URL_FAX.items() if k != "document"}})
    files = [
        ("content", ("fax.json", data.encode(), "application/json")),
        ("content", ("fax.pdf", pdf_bytes(1), "application/pdf")),
    ]
    response = await put(client, tenant, files=files)
    assert response.status_code == 201, response.text
    docs = await store.fax_documents(response.json()["data"]["id"], "original")
    assert [d.filename for d in docs] == ["fax.pdf"]


@pytest.mark.parametrize("form", ["base64", "data-url", "data-url-no-cte"])
async def test_upload_base64_forms(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, form: str
) -> None:
    pdf = pdf_bytes(1)
    encoded = base64.encodebytes(pdf)  # with line breaks, as MIME writes it
    headers = {"Content-Type": "application/pdf", "Content-Transfer-Encoding": "base64"}
    if form != "base64":
        encoded = b"data:application/pdf;base64," + base64.b64encode(pdf)
    if form == "data-url-no-cte":
        del headers["Content-Transfer-Encoding"]
    ctype, body = mixed(
        [json_part({"from_number": "1", "to_number": "4155550100"}), (headers, encoded)]
    )
    response = await put(client, tenant, content=body, headers={"Content-Type": ctype})
    assert response.status_code == 201, response.text
    [doc] = await store.fax_documents(response.json()["data"]["id"], "original")
    assert doc.data == pdf


async def test_an_upload_wins_over_a_url(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    ctype, body = mixed([json_part(URL_FAX), ({"Content-Type": "application/pdf"}, pdf_bytes(1))])
    response = await put(client, tenant, content=body, headers={"Content-Type": ctype})
    assert response.status_code == 201
    assert (await store.get_fax(response.json()["data"]["id"])).document_request is None


async def test_bare_document_body_lacks_the_required_numbers(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await put(
        client, tenant, content=pdf_bytes(1), headers={"Content-Type": "application/pdf"}
    )
    body = assert_error(response, 400)
    assert body["message"] == "validation error"
    assert set(body["data"]) == {"from_number", "to_number"}
    assert "required" in body["data"]["to_number"]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"to_number": "not-a-number"}, "to_number", "format"),
        ({"to_number": "+1555"}, "to_number", "format"),
        ({"retries": 99}, "retries", "maximum"),
        ({"retries": -1}, "retries", "minimum"),
        ({"retries": "many"}, "retries", "type"),
        ({"document": {"url": "ftp://docs.example.com/x.pdf"}}, "document.url", "pattern"),
        ({"document": {"url": "file:///etc/passwd"}}, "document.url", "pattern"),
        ({"document": {"url": "http://x.example/", "method": "delete"}}, "document.method", "enum"),
        (
            {"document": {"url": "http://x.example/", "content": "x" * 257}},
            "document.content",
            "maxLength",
        ),
        ({"document": {"method": "get"}}, "document.url", "required"),
        ({"document": None}, "document.url", "required"),
        (
            {"notifications": {"email": {"send_to": ["ok@x.test", "nope"]}}},
            "notifications.email.send_to",
            "format",
        ),
        ({"fax_timezone": "Mars/Olympus"}, "fax_timezone", "format"),
        ({"from_number": ""}, "from_number", "minLength"),
        ({"faxbox_id": "0" * 32}, "faxbox_id", "invalid"),
    ],
)
async def test_validation_errors_name_the_field(
    client: httpx.AsyncClient, tenant: Tenant, change: dict[str, Any], field: str, rule: str
) -> None:
    response = await put(client, tenant, json={"data": {**URL_FAX, **change}})
    body = assert_error(response, 400)
    assert rule in body["data"][field], body
    assert body["data"][field][rule]["message"]


async def test_no_document_at_all(client: httpx.AsyncClient, tenant: Tenant) -> None:
    data = {k: v for k, v in URL_FAX.items() if k != "document"}
    body = assert_error(await put(client, tenant, json={"data": data}), 400)
    assert body["data"] == {
        "document.url": {"required": {"message": "add document url or upload a document"}}
    }


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"[" * 100_000, "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"<html></html>", "text/html", 415),
        (b"--x\r\nbroken", "multipart/mixed; boundary=x", 400),
        (b"data", "multipart/mixed", 400),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, tenant: Tenant, content: bytes, ctype: str, status: int
) -> None:
    assert_error(
        await put(client, tenant, content=content, headers={"Content-Type": ctype}), status
    )


@pytest.mark.parametrize(
    "document",
    [corrupt_pdf_bytes(), docx_bytes(), b"", b"hello"],
    ids=["corrupt-pdf", "docx", "empty", "text-without-type"],
)
async def test_unfaxable_uploads_are_400(
    client: httpx.AsyncClient, tenant: Tenant, store: Store, document: bytes
) -> None:
    ctype, body = mixed(
        [
            json_part({"from_number": "1", "to_number": "4155550100"}),
            (
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Disposition": 'attachment; filename="x.bin"',
                },
                document,
            ),
        ]
    )
    response = await put(client, tenant, content=body, headers={"Content-Type": ctype})
    if document == b"":
        # An empty part is no document; then there is none at all.
        assert assert_error(response, 400)["data"]["document.url"]
    else:
        assert "document" in assert_error(response, 400)["data"]
    assert await store.recent_faxes(tenant.account_id, 10) == []


def upload(document: bytes, ctype: str, filename: str) -> tuple[str, bytes]:
    disposition = f'attachment; filename="{filename}"'
    return mixed(
        [
            json_part({"from_number": "1", "to_number": "4155550100"}),
            ({"Content-Type": ctype, "Content-Disposition": disposition}, document),
        ]
    )


async def test_permissions_only_aes_256_pdf_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    ctype, body = upload(encrypted_pdf("AES-256"), "application/pdf", "p.pdf")
    response = await put(client, tenant, content=body, headers={"Content-Type": ctype})
    assert response.status_code == 201, response.text
    [document] = await store.fax_documents(response.json()["data"]["id"], "original")
    assert document.pages == 2


@pytest.mark.parametrize(
    ("document", "ctype", "reason"),
    [
        (
            encrypted_pdf("AES-256", user_password="secret"),
            "application/pdf",
            "encrypted PDF needs a password",
        ),
        (
            pdf_with_unknown_security_handler(),
            "application/pdf",
            "PDF encryption not supported (only Standard PDF encryption handler is available)",
        ),
        (png(400, 400, rows=120), "image/png", "image data ends early: 120 of 400 rows"),
        (tiff_with_ifd_loop(), "image/tiff", "TIFF IFD chain loops back to page 1"),
        (truncated_jpeg(), "image/jpeg", "image data ends early (file truncated)"),
    ],
    ids=["password", "security-handler", "png-short", "tiff-ifd-loop", "jpeg-truncated"],
)
async def test_unfaxable_upload_is_400_saying_why(
    client: httpx.AsyncClient,
    tenant: Tenant,
    store: Store,
    document: bytes,
    ctype: str,
    reason: str,
) -> None:
    content_type, body = upload(document, ctype, "doc")
    response = await put(client, tenant, content=body, headers={"Content-Type": content_type})
    error = assert_error(response, 400)
    assert error["data"] == {"document": {"invalid": {"message": reason, "part": "doc"}}}
    assert await store.recent_faxes(tenant.account_id, 10) == []


async def test_too_many_pages(client: httpx.AsyncClient, tenant: Tenant, settings) -> None:
    ctype, body = mixed(
        [
            json_part({"from_number": "1", "to_number": "4155550100"}),
            (
                {"Content-Type": "application/pdf"},
                pdf_bytes(settings.smtp.max_pages + 1, size=(20, 20)),
            ),
        ]
    )
    body_ = assert_error(
        await put(client, tenant, content=body, headers={"Content-Type": ctype}), 400
    )
    assert "document" in body_["data"]


async def test_faxbox_defaults_and_hidden_flags(
    client: httpx.AsyncClient, tenant: Tenant, store: Store
) -> None:
    data = {
        "to_number": "(415) 555-0100",
        "from_number": "+14155550199",
        "faxbox_id": tenant.faxbox.id,
        "document": {"url": "https://docs.example.com/a.pdf"},
        "notifications": {
            "email": {"send_to": "me@acme.test"},
            "sms": {"send_to": ["+14155550111"]},
        },
        "ensure_valid_caller_id": False,
        "custom_sip_headers": {"X-Evil": "1"},
    }
    response = await put(client, tenant, json={"data": data})
    assert response.status_code == 201, response.text
    fax = await store.get_fax(response.json()["data"]["id"])
    assert fax.faxbox_id == tenant.faxbox.id
    assert fax.from_name == tenant.faxbox.caller_name  # the faxbox's default
    assert fax.fax_identity_name == tenant.faxbox.fax_header
    assert fax.retries == tenant.faxbox.retries
    assert fax.to_number == "+14155550100"
    assert fax.notifications == {
        "email": {"send_to": ["me@acme.test"]},
        "sms": {"send_to": ["+14155550111"]},
    }
    row = await raw(store).fetchone("SELECT * FROM faxes WHERE id = ?", (fax.id,))
    assert row is not None and "X-Evil" not in json.dumps(dict(row))


async def test_another_accounts_faxbox_cannot_be_used(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    data = {**URL_FAX, "faxbox_id": other.faxbox.id}
    body = assert_error(await put(client, tenant, json={"data": data}), 400)
    assert "faxbox_id" in body["data"]


async def test_api_jobs_default_to_one_attempt(client: httpx.AsyncClient, store: Store) -> None:
    tenant = await make_tenant(store, name="solo", domain="fax.solo.test")
    data = {k: v for k, v in URL_FAX.items() if k != "retries"}
    response = await put(client, tenant, json={"data": data})
    assert response.json()["data"]["retries"] == 1  # Kazoo's schema default
    response = await put(client, tenant, json={"data": {**data, "retries": 0}})
    assert response.json()["data"]["retries"] == 1  # Kazoo: 0 and 1 both mean one attempt
