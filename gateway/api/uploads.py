"""Request bodies: read under a size cap, JSON envelopes, and Kazoo's one-request uploads.

An upload is ``multipart/mixed`` (Kazoo's documented call) or ``multipart/form-data`` (what
``curl -F`` sends): a JSON part and one or more document parts. Both have the same framing, so
one small splitter reads both; it finds boundaries with ``bytes.find`` (C speed, no per-line
Python work) and never buffers more than the capped body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import quopri
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import PurePosixPath
from typing import Any

from starlette.requests import Request

from gateway.api.errors import HttpError, field_error, too_large

JSON_TYPES = frozenset({"application/json", "application/x-json", "text/json"})
# Kazoo's examples send JSON with `curl -d` and no Content-Type: curl then says form-urlencoded.
JSON_LENIENT = JSON_TYPES | {"", "application/x-www-form-urlencoded", "text/plain"}
DOCUMENT_TYPES = frozenset({"application/pdf", "application/x-pdf", "image/tiff"})
MULTIPART_TYPES = frozenset({"multipart/mixed", "multipart/form-data"})
MAX_PARTS = 32
MAX_PART_HEADER_BYTES = 16 * 1024
# json.loads of a large body takes milliseconds per megabyte: beyond this, off the loop.
JSON_IN_LOOP_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    content_type: str


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def content_type(request: Request) -> Message:
    """The parsed Content-Type header (``get_content_type()``, ``get_param()``)."""
    header = Message()
    header["content-type"] = request.headers.get("content-type", "")
    return header


def _media_type(header: Message, raw: str) -> str:
    # email's parser answers text/plain for a missing header; we need to tell "none" apart.
    return header.get_content_type() if raw.strip() else ""


async def parse_json(body: bytes, what: str = "body") -> Any:
    def load() -> Any:
        return json.loads(body)

    try:
        return load() if len(body) <= JSON_IN_LOOP_BYTES else await asyncio.to_thread(load)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        raise HttpError(400, "invalid json", {"message": f"the {what} is not valid JSON"}) from exc


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body; an empty body is ``{}`` (DELETE may carry one or not)."""
    raw_type = request.headers.get("content-type", "")
    media = _media_type(content_type(request), raw_type)
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    if media not in JSON_LENIENT:
        raise HttpError(415, data={"message": f"expected application/json, not {media}"})
    value = await parse_json(body)
    if not isinstance(value, dict):
        raise HttpError(400, "invalid json", {"message": "the body must be a JSON object"})
    return value


def envelope_data(value: dict[str, Any]) -> dict[str, Any]:
    """Kazoo's ``{"data": {...}}``; a bare object is taken as the data itself."""
    data = value.get("data", value)
    return data if isinstance(data, dict) else {}


async def read_create_request(request: Request, limit: int) -> tuple[dict[str, Any], list[Upload]]:
    """The fax's ``data`` and its uploaded documents, whatever form the client chose."""
    raw_type = request.headers.get("content-type", "")
    header = content_type(request)
    media = _media_type(header, raw_type)
    body = await read_body(request, limit)
    if media in MULTIPART_TYPES:
        boundary = header.get_param("boundary")
        if not isinstance(boundary, str) or not 0 < len(boundary) <= 200:
            raise HttpError(400, "invalid multipart", {"message": "multipart without a boundary"})
        return await _from_parts(split_multipart(body, boundary))
    if media in DOCUMENT_TYPES:
        # A bare document has no fax data: Kazoo answers the schema's required fields.
        return {}, [Upload(body, "document", media)]
    if media in JSON_LENIENT:
        if not body.strip():
            return {}, []
        value = await parse_json(body)
        if not isinstance(value, dict):
            raise HttpError(400, "invalid json", {"message": "the body must be a JSON object"})
        return envelope_data(value), []
    raise HttpError(415, data={"message": f"unsupported Content-Type {media}"})


def split_multipart(body: bytes, boundary: str) -> list[tuple[Message, bytes]]:
    """The (headers, content) of each part (RFC 2046 framing; CRLF or bare LF line ends)."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        first = body.find(b"\n" + delimiter)
        if first < 0:
            raise _bad_multipart("no part found")
        pos = first + 1 + len(delimiter)
    parts: list[tuple[Message, bytes]] = []
    while not body.startswith(b"--", pos):
        line_end = body.find(b"\n", pos)
        if line_end < 0:
            raise _bad_multipart("unterminated part")
        start = line_end + 1
        following = body.find(b"\n" + delimiter, start)
        if following < 0:
            raise _bad_multipart("missing closing boundary")
        end = following - 1 if following > start and body[following - 1] == 0x0D else following
        parts.append(_split_part(body[start:end]))
        if len(parts) > MAX_PARTS:
            raise _bad_multipart(f"more than {MAX_PARTS} parts")
        pos = following + 1 + len(delimiter)
    return parts


def _split_part(raw: bytes) -> tuple[Message, bytes]:
    if raw.startswith((b"\r\n", b"\n")):  # no headers at all
        return Message(), raw[2:] if raw.startswith(b"\r\n") else raw[1:]
    ends = [(i, n) for i, n in ((raw.find(b"\r\n\r\n"), 4), (raw.find(b"\n\n"), 2)) if i >= 0]
    if not ends:
        header_bytes, content = raw, b""
    else:
        index, size = min(ends)
        header_bytes, content = raw[:index], raw[index + size :]
    if len(header_bytes) > MAX_PART_HEADER_BYTES:
        raise _bad_multipart("part headers too long")
    return BytesHeaderParser(policy=compat32).parsebytes(header_bytes + b"\r\n\r\n"), content


def _bad_multipart(reason: str) -> HttpError:
    return HttpError(400, "invalid multipart", {"message": f"malformed multipart body: {reason}"})


async def _from_parts(parts: list[tuple[Message, bytes]]) -> tuple[dict[str, Any], list[Upload]]:
    data: dict[str, Any] | None = None
    uploads: list[Upload] = []
    for headers, content in parts:
        media = headers.get_content_type() if headers.get("content-type") else ""
        filename = headers.get_filename()
        looks_json = not filename and media in ("", "text/plain") and content.lstrip()[:1] == b"{"
        if data is None and (media in JSON_TYPES or looks_json):
            value = await parse_json(content, "JSON part")
            if not isinstance(value, dict):
                raise HttpError(400, "invalid json", {"message": "the JSON part must be an object"})
            data = envelope_data(value)
            continue
        if not content.strip():
            continue  # an empty form field is no document
        decoded = _decode(content, str(headers.get("content-transfer-encoding", "")))
        name = _safe_name(filename) or f"document-{len(uploads) + 1}"
        uploads.append(Upload(decoded, name, media))
    return data or {}, uploads


def _decode(content: bytes, transfer_encoding: str) -> bytes:
    """Raw bytes; or base64 (a plain string or a whole ``data:...;base64,`` URL); or QP."""
    encoding = transfer_encoding.strip().lower()
    text = content.strip()
    is_data_url = text[:5].lower() == b"data:" and b";base64," in text[:200].lower()
    if encoding == "quoted-printable":
        return quopri.decodestring(content)
    if encoding != "base64" and not is_data_url:
        return content
    if is_data_url:
        text = text.split(b",", 1)[1]
    try:
        return base64.b64decode(text)  # non-alphabet bytes (line breaks) are skipped
    except (binascii.Error, ValueError) as exc:
        raise field_error("document", "format", "a document part is not valid base64") from exc


def _safe_name(filename: str | None) -> str:
    if not filename:
        return ""
    name = PurePosixPath(filename.replace("\\", "/")).name
    return "".join(ch for ch in name if ch.isprintable()).strip()[:120]
