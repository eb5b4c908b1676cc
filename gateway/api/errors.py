"""Every failure becomes Kazoo's error shape here, in one place.

Domain errors (``gateway.errors``) are mapped by class; ``HttpError`` carries what only HTTP
has (401, 403, 413, 415, several field errors at once); Starlette's own 404/405 and pydantic's
validation errors are translated too. A client error is never a 5xx.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.responses import error_response
from gateway.errors import (
    BusyError,
    ConflictError,
    DocumentError,
    GatewayError,
    InvalidFieldError,
    MessageError,
    NotFoundError,
    StorageError,
)

log = logging.getLogger(__name__)

VALIDATION = "validation error"
_HTTP_MESSAGES = {
    400: "bad_request",
    401: "invalid_credentials",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
# pydantic error types → the JSON-schema rule names Kazoo reports under data.<field>.
_RULES = {
    "missing": "required",
    "string_too_short": "minLength",
    "string_too_long": "maxLength",
    "too_short": "minItems",
    "too_long": "maxItems",
    "greater_than": "minimum",
    "greater_than_equal": "minimum",
    "less_than": "maximum",
    "less_than_equal": "maximum",
    "literal_error": "enum",
    "enum": "enum",
    "string_pattern_mismatch": "pattern",
}


class HttpError(Exception):
    """An answer only HTTP has words for; ``data`` is the error's ``data`` object."""

    def __init__(
        self,
        status_code: int,
        message: str | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or _HTTP_MESSAGES.get(status_code, "error"))
        self.status_code = status_code
        self.message = message or _HTTP_MESSAGES.get(status_code, "error")
        self.data = dict(data or {})
        self.headers = dict(headers or {})


def field_error(field: str, rule: str, message: str, **details: Any) -> HttpError:
    return HttpError(400, VALIDATION, {field: {rule: {"message": message, **details}}})


def field_errors(errors: Iterable[tuple[str, str, str]]) -> HttpError:
    data: dict[str, dict[str, Any]] = {}
    for field, rule, message in errors:
        data.setdefault(field, {})[rule] = {"message": message}
    return HttpError(400, VALIDATION, data)


def unauthorized() -> HttpError:
    return HttpError(401, data={"message": "missing or invalid auth token"})


def too_many_failures(retry_after: int) -> HttpError:
    """A client address that guessed too often: it must wait ``retry_after`` seconds."""
    message = f"too many failed authentication attempts; retry after {retry_after} s"
    return HttpError(429, message, headers={"Retry-After": str(retry_after)})


def too_large(limit: int) -> HttpError:
    message = f"Payload or Files must not be more than {limit} bytes"
    return HttpError(413, data={"file": {"maxSize": {"message": message, "target": limit}}})


def pydantic_errors(exc: ValidationError, prefix: str = "") -> HttpError:
    """Each pydantic error as ``data.<dotted field>.<rule>.message``."""
    found = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or "data")
        kind = err["type"]
        rule = _RULES.get(kind) or ("type" if kind.endswith(("_type", "_parsing")) else kind)
        found.append((field, rule, str(err["msg"])))
    return field_errors(found)


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried ("str", "list[str]"): not part of the field.
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "list", "dict"))


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors(exc, prefix) from exc


def response_for(request: Request, exc: Exception) -> Response:
    """The Kazoo error answer for ``exc`` (registered as Starlette's exception handler)."""
    if isinstance(exc, HttpError):
        return error_response(request, exc.status_code, exc.message, exc.data, exc.headers)
    if isinstance(exc, HTTPException):
        message = _HTTP_MESSAGES.get(exc.status_code, "error")
        return error_response(
            request, exc.status_code, message, {"message": str(exc.detail)}, exc.headers
        )
    if isinstance(exc, InvalidFieldError):
        data = {exc.field: {exc.rule: {"message": exc.message}}}
        return error_response(request, 400, VALIDATION, data)
    if isinstance(exc, NotFoundError):
        return error_response(request, 404, "bad_identifier", {"message": str(exc)})
    if isinstance(exc, ConflictError):
        return error_response(request, 409, "conflict", {"message": str(exc)})
    if isinstance(exc, DocumentError):
        data = {"document": {"invalid": {"message": exc.reason, "part": exc.part}}}
        return error_response(request, 400, VALIDATION, data)
    if isinstance(exc, MessageError):
        data = {"document": {"invalid": {"message": str(exc)}}}
        return error_response(request, 400, VALIDATION, data)
    if isinstance(exc, BusyError):  # every office conversion slot taken: the client retries
        headers = {"Retry-After": "30"}
        return error_response(request, 503, "busy", {"message": str(exc)}, headers)
    if isinstance(exc, StorageError):
        log.error("api: storage error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(request, 503, "datastore_fault", {"message": "try again later"})
    if isinstance(exc, GatewayError):
        log.error("api: unmapped %s on %s: %s", type(exc).__name__, request.url.path, exc)
        return error_response(request, 400, "bad_request", {"message": str(exc)})
    log.exception("api: unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "internal_server_error", {"message": "internal error"})
