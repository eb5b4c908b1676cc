"""``GET /v2/schemas`` and ``GET /v2/schemas/{name}``: Kazoo's schema documents, which clients
(the Ruby SDK) fetch to validate request bodies before sending them.

Each document is made from the very pydantic model that validates the request (``schemas``), so
it cannot drift from what the API accepts. Like Kazoo, these routes need no token: a schema is
code made public, with no account data and no secret in it.

The API checks more than a schema can say (document URLs are http or https, time zones and
numbers exist, addresses look like addresses): a body the schema accepts can still get a 400
naming the field; a body the schema refuses is refused by the API too, except where the API is
lenient on input (numbers for strings, ``"GET"`` for ``"get"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from gateway.api import schemas
from gateway.api.draft04 import DRAFT_04, model_schema
from gateway.api.errors import HttpError
from gateway.api.responses import envelope


@dataclass(frozen=True)
class KazooSchema:
    model: type[BaseModel]
    description: str


# Kazoo's names for them (applications/crossbar/priv/couchdb/schemas/{faxes,faxbox}.json).
SCHEMAS: dict[str, KazooSchema] = {
    "faxbox": KazooSchema(
        schemas.FaxboxIn, "FaxBoxes allow configuration of individual fax virtual machines"
    ),
    "faxes": KazooSchema(
        schemas.FaxIn,
        "Faxes API allows you to update and access fax jobs for both sending and receiving",
    ),
}


@cache
def schema_document(name: str) -> dict[str, Any]:
    """The draft-04 document named ``name`` as Kazoo serves it (``KeyError`` if unknown)."""
    entry = SCHEMAS[name]
    body = model_schema(entry.model)
    # "_id" is the name in Kazoo's stored schema, "id" the one its API answers with.
    document = {**body, "$schema": DRAFT_04, "_id": name, "id": name}
    document["description"] = entry.description
    return dict(sorted(document.items()))


class SchemaNamesEnvelope(BaseModel):
    status: Literal["success"]
    request_id: str
    revision: str
    data: list[str]


class SchemaEnvelope(BaseModel):
    """``data`` is a JSON schema, draft-04, self-contained (no ``$ref``)."""

    status: Literal["success"]
    request_id: str
    revision: str
    data: dict[str, Any]


async def list_schemas(request: Request) -> Response:
    return envelope(request, sorted(SCHEMAS))


async def get_schema(request: Request) -> Response:
    name = str(request.path_params["name"])
    if name not in SCHEMAS:
        raise HttpError(404, "bad_identifier", {"message": "bad identifier", "cause": name})
    return envelope(request, schema_document(name))
