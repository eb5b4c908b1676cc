"""From a validated request to a new job (``NewFax``): the faxbox's defaults, the overrides the
client sent, numbers in E.164, and uploaded documents checked off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from gateway.api.schemas import FaxFields, FaxNotifications, send_to_list
from gateway.api.uploads import Upload
from gateway.config import Settings
from gateway.documents.charsets import charset_of, decode_text
from gateway.documents.inspect import InspectLimits, inspect_binary, sniff, text_document
from gateway.documents.office import OfficeConverter, office_format
from gateway.errors import (
    InvalidFieldError,
    InvalidNumberError,
    UnsupportedDocumentError,
)
from gateway.models import Fax, Faxbox, NewFax, SourceDocument
from gateway.numbers import normalize_api_number

# Kazoo's schema default for an API job: one attempt. A faxbox's own ``retries`` wins.
API_DEFAULT_RETRIES = 1


def region_of(settings: Settings, faxbox: Faxbox | None) -> str:
    return (faxbox.default_region if faxbox else settings.smtp.default_region).upper()


def e164(field: str, value: str, region: str) -> str:
    try:
        return normalize_api_number(value, region)
    except InvalidNumberError as exc:
        raise InvalidFieldError(field, "format", f"not a valid fax number: {exc}") from exc


def _caller_id(value: str, region: str) -> str:
    """Kazoo never checked ``from_number``; we store it in E.164 when it is a number."""
    try:
        return normalize_api_number(value, region)
    except InvalidNumberError:
        return value


def notifications_of(value: FaxNotifications | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if value is None:
        return result
    for channel in ("email", "sms"):
        given = getattr(value, channel)
        if given is not None:
            result[channel] = {"send_to": send_to_list(given.send_to)}
    return result


def base_job(account_id: str, settings: Settings, faxbox: Faxbox | None) -> NewFax:
    """A job with nothing but its faxbox's defaults (to_number still empty)."""
    if faxbox is None:
        return NewFax(
            account_id=account_id,
            to_number="",
            retries=API_DEFAULT_RETRIES,
            source="api",
            render_options={
                "resolution": "fine",
                "paper": settings.render.paper,
                "attach_pdf": True,
            },
        )
    notify = list(faxbox.outbound_notify)
    return faxbox.new_fax(
        account_id=account_id,
        source="api",
        notifications={"email": {"send_to": notify}} if notify else {},
    )


def copy_of(fax: Fax) -> NewFax:
    """A resubmission starts as the original job, attempts and results cleared."""
    return NewFax(
        account_id=fax.account_id,
        to_number=fax.to_number,
        faxbox_id=fax.faxbox_id,
        from_number=fax.from_number,
        from_name=fax.from_name,
        to_name=fax.to_name,
        original_number=fax.original_number,
        fax_identity_number=fax.fax_identity_number,
        fax_identity_name=fax.fax_identity_name,
        fax_timezone=fax.fax_timezone,
        retries=fax.retries,
        subject=fax.subject,
        source="api",
        notifications=fax.notifications,
        render_options=fax.render_options,
        document_request=fax.document_request,
    )


def apply(fields: FaxFields, job: NewFax, region: str) -> NewFax:
    """``job`` with every field the client sent (``null`` clears an optional one)."""
    sent = fields.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(fields, name)
        for name in ("from_name", "to_name", "fax_identity_number", "fax_identity_name")
        if name in sent
    }
    if "fax_timezone" in sent and fields.fax_timezone:
        changes["fax_timezone"] = fields.fax_timezone
    if "from_number" in sent:
        number = fields.from_number
        changes["from_number"] = _caller_id(number, region) if number else None
    if "to_number" in sent and fields.to_number:
        changes["to_number"] = e164("to_number", fields.to_number, region)
    if "retries" in sent and fields.retries is not None:
        changes["retries"] = max(1, fields.retries)  # Kazoo: 0 and 1 both mean one attempt
    if "notifications" in sent:
        changes["notifications"] = notifications_of(fields.notifications)
    if "document" in sent:
        document = fields.document
        changes["document_request"] = document.model_dump(exclude_none=True) if document else None
    return replace(job, **changes)


def require_numbers(job: NewFax) -> None:
    missing = [
        (name, "required", f"{name} is required")
        for name in ("from_number", "to_number")
        if not getattr(job, name)
    ]
    if missing:
        field, rule, message = missing[0]
        raise InvalidFieldError(field, rule, message)


async def inspect_uploads(
    uploads: list[Upload], settings: Settings, office: OfficeConverter | None = None
) -> list[SourceDocument]:
    """Check each uploaded document (type, pages, pixels) in a thread; 400 names the bad one.
    Office documents are converted to PDF there (as at SMTP intake), by ``office`` if any."""
    limits = InspectLimits(settings.smtp.max_image_pixels, settings.smtp.max_pages)
    fonts = settings.render.fonts
    documents = [
        await asyncio.to_thread(_inspect, upload, limits, office, fonts) for upload in uploads
    ]
    pages = sum(doc.pages for doc in documents)
    if pages > settings.smtp.max_pages:
        raise InvalidFieldError(
            "document", "maximum", f"{pages} pages; at most {settings.smtp.max_pages} are allowed"
        )
    return documents


def _inspect(
    upload: Upload,
    limits: InspectLimits,
    office: OfficeConverter | None,
    fonts: tuple[str, ...] = (),
) -> SourceDocument:
    fmt = office_format(upload.data) if sniff(upload.data) is None else None
    if fmt is not None:
        if office is None:
            raise UnsupportedDocumentError(
                f"{upload.filename}: office documents need LibreOffice on this gateway"
            )
        pdf = office.to_pdf(upload.data, fmt, upload.filename)
        return inspect_binary(pdf, upload.filename, limits)
    if sniff(upload.data) is None and upload.content_type == "text/plain":
        text = decode_text(upload.data, charset_of(upload.content_type))
        return text_document(text, upload.filename, fonts)
    return inspect_binary(upload.data, upload.filename, limits)
