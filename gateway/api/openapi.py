"""``GET /v2/openapi.json``: an OpenAPI 3.1 document built from the pydantic models of requests
(``schemas``) and answers (``shapes``), with the routes listed once here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import __version__
from gateway.api import kazoo_schema, schemas, shapes
from gateway.api.paging import MAX_PAGE_SIZE

REF = "#/components/schemas/{model}"
Body = Literal["none", "fax", "action", "faxbox", "faxbox_patch", "api_auth", "optional_json"]


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    summary: str
    ok: int = 200
    answer: type[BaseModel] | None = shapes.EmptyEnvelope
    body: Body = "none"
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = (401, 404)
    public: bool = False
    binary: bool = False
    tags: tuple[str, ...] = field(default=("faxes",))


_A = "/v2/accounts/{account_id}"
_F = _A + "/faxes/{folder}/{fax_id}"
_LIST = ("page_size", "start_key", "ascending", "paginate", "created_from", "created_to")
OPS: tuple[Op, ...] = (
    Op("get", "/healthz", "Health of every part (store, writer, render pool, loops); 503 names"
       " the failing ones", answer=shapes.Health, errors=(503,),
       public=True, tags=("service",)),
    Op("put", "/v2/api_auth", "Exchange an account's API key for an auth token", ok=201,
       answer=shapes.AuthEnvelope, body="api_auth", errors=(400, 401), public=True,
       tags=("auth",)),
    Op("get", "/v2/schemas", "Names of the Kazoo JSON schemas served (no token needed)",
       answer=kazoo_schema.SchemaNamesEnvelope, errors=(), public=True, tags=("schemas",)),
    Op("get", "/v2/schemas/{name}", "One Kazoo JSON schema, draft-04, self-contained",
       answer=kazoo_schema.SchemaEnvelope, errors=(404,), public=True, tags=("schemas",)),
    Op("put", _A + "/faxes", "Send a fax (document.url, or uploaded in the same request)",
       ok=201, answer=shapes.FaxEnvelope, body="fax", errors=(400, 401, 404, 413, 415)),
    Op("put", _A + "/faxes/outgoing", "Send a fax (alias of PUT .../faxes)", ok=201,
       answer=shapes.FaxEnvelope, body="fax", errors=(400, 401, 404, 413, 415)),
    Op("get", _A + "/faxes/smtplog", "SMTP transactions of the account", query=_LIST,
       answer=shapes.SmtpLogListEnvelope, errors=(400, 401, 404)),
    Op("get", _A + "/faxes/smtplog/{log_id}", "One SMTP transaction, whole",
       answer=shapes.SmtpLogEnvelope),
    Op("get", _A + "/faxes/{folder}", "A folder's faxes, newest first", query=(*_LIST, "filter"),
       answer=shapes.FaxListEnvelope, errors=(400, 401, 404)),
    Op("get", _F, "One fax, whole, with its attempts", answer=shapes.FaxEnvelope),
    Op("put", _F, "Resubmit (outbound) or forward (inbound) as a new fax", ok=201,
       answer=shapes.FaxEnvelope, body="action", errors=(400, 401, 404, 409, 413, 415)),
    Op("delete", _F, "Delete the fax and its documents (cancels a pending one)",
       answer=shapes.FaxEnvelope, body="optional_json", errors=(401, 404, 409)),
    Op("get", _F + "/attachment", "The fax document: PDF, TIFF or the original",
       answer=None, query=("format", "disposition"), errors=(400, 401, 404), binary=True),
    Op("delete", _F + "/attachment", "Erase the documents, keep the record",
       body="optional_json", errors=(401, 404, 409)),
    Op("get", _A + "/faxboxes", "The account's faxboxes", answer=shapes.FaxboxListEnvelope,
       tags=("faxboxes",)),
    Op("put", _A + "/faxboxes", "Create a faxbox", ok=201, answer=shapes.FaxboxEnvelope,
       body="faxbox", errors=(400, 401, 404, 413, 415), tags=("faxboxes",)),
    Op("get", _A + "/faxboxes/{faxbox_id}", "One faxbox", answer=shapes.FaxboxEnvelope,
       tags=("faxboxes",)),
    Op("post", _A + "/faxboxes/{faxbox_id}", "Replace a faxbox", answer=shapes.FaxboxEnvelope,
       body="faxbox", errors=(400, 401, 404, 413, 415), tags=("faxboxes",)),
    Op("patch", _A + "/faxboxes/{faxbox_id}", "Change some fields of a faxbox",
       answer=shapes.FaxboxEnvelope, body="faxbox_patch", errors=(400, 401, 404, 413, 415),
       tags=("faxboxes",)),
    Op("delete", _A + "/faxboxes/{faxbox_id}", "Delete a faxbox (its faxes stay)",
       answer=shapes.FaxboxEnvelope, body="optional_json", tags=("faxboxes",)),
    Op("get", "/v2/faxes/smtplog", "Admin: every SMTP transaction, with or without account",
       query=_LIST, answer=shapes.SmtpLogListEnvelope, errors=(400, 401, 403), tags=("admin",)),
    Op("get", "/v2/faxes/smtplog/{log_id}", "Admin: one SMTP transaction",
       answer=shapes.SmtpLogEnvelope, errors=(401, 403, 404), tags=("admin",)),
)  # fmt: skip

_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "account_id": {"type": "string", "description": "32 hex digits"},
    "fax_id": {"type": "string"},
    "faxbox_id": {"type": "string"},
    "log_id": {"type": "string"},
    "name": {"type": "string", "description": "a schema name from GET /v2/schemas"},
    "folder": {"type": "string", "enum": ["outgoing", "outbox", "incoming", "inbox"]},
}
_GREGORIAN = "Gregorian seconds (Unix + 62167219200); fractions are rounded"
_QUERY: dict[str, dict[str, Any]] = {
    "page_size": {"schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}},
    "start_key": {"schema": {"type": "string"}, "description": "a next_start_key, as given"},
    "ascending": {"schema": {"type": "boolean"}, "description": "oldest first"},
    "paginate": {"schema": {"type": "boolean"}, "description": "false: the whole range"},
    "created_from": {"schema": {"type": "number"}, "description": _GREGORIAN},
    "created_to": {"schema": {"type": "number"}, "description": _GREGORIAN},
    "format": {"schema": {"type": "string", "enum": ["pdf", "tiff", "original"]}},
    "disposition": {"schema": {"type": "string", "enum": ["attachment", "inline"]}},
}
_MODELS: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
    (schemas.FaxIn, "validation"),
    (schemas.FaxFields, "validation"),
    (schemas.ActionIn, "validation"),
    (schemas.FaxboxIn, "validation"),
    (schemas.FaxboxFields, "validation"),
    (schemas.ApiAuthIn, "validation"),
    *((model, "serialization") for model in {op.answer for op in OPS if op.answer}),
    (shapes.ErrorEnvelope, "serialization"),
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _data_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": _ref(model)}, "required": ["data"]}


def _json(schema: dict[str, Any], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """A JSON media type; with the model's example, wrapped in Kazoo's envelope."""
    media: dict[str, Any] = {"schema": schema}
    extra = model.model_config.get("json_schema_extra") if model else None
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if isinstance(examples, list) and examples:
        media["example"] = {"data": examples[0]}
    return media


def _request_body(body: Body) -> dict[str, Any] | None:
    if body == "none":
        return None
    if body == "optional_json":
        content = {"application/json": {"schema": {"type": "object"}}}
        return {"required": False, "content": content}
    if body == "fax":
        upload = {
            "type": "object",
            "description": 'a JSON part ({"data": {...}}) first, then one or more documents',
            "properties": {
                "data": {"type": "string", "contentMediaType": "application/json"},
                "document": {"type": "string", "contentMediaType": "application/pdf"},
            },
        }
        return {
            "required": True,
            "content": {
                "application/json": _json(_data_of(schemas.FaxIn), schemas.FaxIn),
                "multipart/mixed": {"schema": upload},
                "multipart/form-data": {"schema": upload},
            },
        }
    media = {
        "action": _json(_ref(schemas.ActionIn)),
        "faxbox": _json(_data_of(schemas.FaxboxIn), schemas.FaxboxIn),
        "faxbox_patch": _json(_data_of(schemas.FaxboxFields)),
        "api_auth": _json(_ref(schemas.ApiAuthIn)),
    }[body]
    return {"required": True, "content": {"application/json": media}}


def _operation(op: Op) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for name, schema in _PATH_PARAMS.items()
        if "{" + name + "}" in op.path
    ]
    for name in op.query:
        if name == "filter":
            continue  # filter_<field>=value: a family, described in docs/api.md
        params.append({"name": name, "in": "query", "required": False, **_QUERY[name]})
    if op.binary:
        binary = {"schema": {"type": "string", "format": "binary"}}
        ok: dict[str, Any] = {
            "description": "the document",
            "content": {t: binary for t in ("application/pdf", "image/tiff", "*/*")},
        }
    else:
        assert op.answer is not None
        ok = {
            "description": "success",
            "content": {"application/json": {"schema": _ref(op.answer)}},
        }
    error = {"content": {"application/json": {"schema": _ref(shapes.ErrorEnvelope)}}}
    responses: dict[str, Any] = {str(op.ok): ok}
    # 429: every operation that checks a credential slows an address that keeps failing.
    slowed = {429} if 401 in op.errors else set()
    for code in sorted({*op.errors, 405, *slowed}):
        responses[str(code)] = {"description": f"HTTP {code}", **error}
    operation: dict[str, Any] = {
        "operationId": f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", ""),
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": params,
        "responses": responses,
    }
    body = _request_body(op.body)
    if body is not None:
        operation["requestBody"] = body
    if op.public:
        operation["security"] = []
    return operation


def build_openapi() -> dict[str, Any]:
    _, defs = models_json_schema(_MODELS, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fax-gateway faxes API (Kazoo-compatible)",
            "version": __version__,
            "description": "See docs/api.md. Times are Gregorian seconds.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "auth_token"},
            },
        },
        "security": [{"authToken": []}, {"bearer": []}, {"queryToken": []}],
    }
