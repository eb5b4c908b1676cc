"""``.../{folder}/{id}/attachment``: the fax as PDF (default), TIFF or the original upload, and
erasing those bytes while the record stays.

The format is ``?format=`` or else the ``Accept`` header, where only an explicit preference for
``image/tiff`` gets the TIFF: ``*/*``, jQuery's ``text/plain, */*; q=0.01``, a browser's default
and no header at all get the PDF, which is what Kazoo clients expect.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.responses import Response

from gateway.api.context import Call
from gateway.api.errors import field_error
from gateway.api.faxes import fax_in_folder
from gateway.api.responses import envelope
from gateway.documents.pdfout import tiff_to_pdf
from gateway.errors import NotFoundError
from gateway.models import CONTENT_TYPES, DocumentKind, Fax, SourceDocument

FORMATS = ("pdf", "tiff", "original")
_EXTENSIONS = {
    DocumentKind.PDF: "pdf",
    DocumentKind.TIFF: "tiff",
    DocumentKind.PNG: "png",
    DocumentKind.JPEG: "jpg",
    DocumentKind.GIF: "gif",
    DocumentKind.TEXT: "txt",
}


def chosen_format(query_format: str | None, accept: str) -> str:
    if query_format is not None:
        fmt = query_format.strip().lower()
        fmt = "tiff" if fmt == "tif" else fmt
        if fmt not in FORMATS:
            raise field_error("format", "enum", "format must be pdf, tiff or original")
        return fmt
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = item.split(";")
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media.strip().lower()] = weight
    tiff = weights.get("image/tiff", 0.0)
    return "tiff" if tiff > 0 and tiff > weights.get("application/pdf", 0.0) else "pdf"


def _local_time(fax: Fax) -> datetime:
    try:
        zone = ZoneInfo(fax.fax_timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return datetime.fromtimestamp(fax.created, UTC).astimezone(zone)


def content_disposition(kind: str, filename: str) -> str:
    """Quoted ASCII ``filename`` (Kazoo's was unquoted) plus RFC 5987 ``filename*`` if needed."""
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename
    )
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


async def _document(call: Call, fax: Fax, fmt: str) -> SourceDocument | None:
    if fmt != "pdf":
        return await call.store.fax_document(fax.id, fmt)
    pdf = await call.store.fax_document(fax.id, "pdf")
    if pdf is not None:
        return pdf
    tiff = await call.store.fax_document(fax.id, "tiff")
    if tiff is None:
        return None
    data = await asyncio.to_thread(tiff_to_pdf, tiff.data)  # CPU work: off the event loop
    return SourceDocument(DocumentKind.PDF, data, tiff.filename, tiff.pages)


async def get_attachment(call: Call) -> Response:
    request = call.request
    fmt = chosen_format(request.query_params.get("format"), request.headers.get("accept", ""))
    fax = await fax_in_folder(call)
    document = await _document(call, fax, fmt)
    if document is None:
        raise NotFoundError(f"fax {fax.id} has no {fmt} document (not rendered yet, or erased)")
    stamp = _local_time(fax).strftime("%Y-%m-%d_%H-%M-%S")
    filename = f"fax_document_{stamp}.{_EXTENSIONS[document.kind]}"
    if fmt == "original" and document.filename:
        filename = document.filename
    kind = "inline" if request.query_params.get("disposition") == "inline" else "attachment"
    headers = {
        "Content-Disposition": content_disposition(kind, filename),
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(document.data, headers=headers, media_type=CONTENT_TYPES[document.kind])


async def delete_attachment(call: Call) -> Response:
    """Erase the fax's documents (privacy); the record and its results stay."""
    fax = await fax_in_folder(call)
    await call.store.erase_fax_documents(fax.id, call.account_id)
    return envelope(call.request, {})
