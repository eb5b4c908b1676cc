"""Kazoo's JSON envelopes: ``{"data", "status": "success", "request_id", "revision", ...}`` for
answers and ``{"status": "error", "error": "<code>", "message", "data"}`` for errors.

``Content-Type`` is ``application/json`` exactly: some Kazoo clients compare it as a string.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON = "application/json"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def envelope(
    request: Request,
    data: Any,
    status_code: int = 200,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A success answer; ``extra`` adds top-level keys (page_size, next_start_key, ...)."""
    return envelope_json(request, dumps(data), status_code, extra=extra, headers=headers)


def envelope_json(
    request: Request,
    body_data: bytes,
    status_code: int = 200,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``envelope`` for data already serialized (lists encode their rows as they read them)."""
    # The revision stands in for Kazoo's document _rev: it changes when the data does.
    revision = hashlib.blake2b(body_data, digest_size=16).hexdigest()
    tail: dict[str, Any] = {
        "status": "success",
        "request_id": request_id(request),
        "revision": revision,
    }
    token = request.scope.get("state", {}).get("auth_token")
    if token:
        tail["auth_token"] = token  # Kazoo echoes the caller's token; SDKs read it back
    tail.update(extra or {})
    # Spliced rather than dumped twice: the data is serialized once, for the body and the hash.
    body = b'{"data":' + body_data + b"," + dumps(tail)[1:]
    return Response(body, status_code, headers=dict(headers or {}), media_type=JSON)


def error_body(
    status_code: int, message: str, data: Mapping[str, Any] | None, rid: str
) -> dict[str, Any]:
    return {
        "status": "error",
        "error": str(status_code),
        "message": message,
        "data": dict(data or {}),
        "request_id": rid,
    }


def error_response(
    request: Request,
    status_code: int,
    message: str,
    data: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = dumps(error_body(status_code, message, data, request_id(request)))
    return Response(body, status_code, headers=dict(headers or {}), media_type=JSON)


class RequestContext:
    """ASGI middleware: a request id for every request (the client's ``X-Request-ID`` if it is
    sane), echoed as a header; and one canonical path, so ``.../faxes/`` is ``.../faxes``
    (clients send both, and a redirect would lose a PUT's body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            trimmed = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            scope = dict(scope, path=trimmed)
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
