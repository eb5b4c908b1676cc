"""GET /v2/schemas and /v2/schemas/{name}: Kazoo's draft-04 schema documents, made from the
models that validate requests, so that a client validating against them agrees with the API.

The differential tests send each body to the real API and to a draft-04 validator
(jsonschema_rs, which schemathesis brings) and require the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from pydantic import BaseModel

from gateway.api.draft04 import DRAFT_04, model_schema
from gateway.api.kazoo_schema import SchemaEnvelope, SchemaNamesEnvelope
from gateway.api.schemas import FaxboxIn, FaxIn
from tests.api.conftest import assert_error, auth, faxes_url
from tests.conftest import Tenant

GOOD_FAX: dict[str, Any] = FaxIn.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


async def fetch_schema(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.get(f"/v2/schemas/{name}")
    assert response.status_code == 200, response.text
    return SchemaEnvelope.model_validate(response.json()).data


def validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    jsonschema_rs.meta.validate(schema)  # a well-formed draft-04 document
    return jsonschema_rs.Draft4Validator(schema)


def walk(schema: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of a schema document, at any depth."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield path, key, value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from walk(value, f"{path}/{index}")


def fields_of(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def required_of(model: type[BaseModel]) -> list[str]:
    return sorted(
        info.alias or name for name, info in model.model_fields.items() if info.is_required()
    )


# --- the routes -----------------------------------------------------------------------------


async def test_the_list_names_the_fax_schemas_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/schemas")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = SchemaNamesEnvelope.model_validate(response.json())
    assert body.data == ["faxbox", "faxes"]


async def test_faxes_is_kazoos_document_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/schemas/faxes/")  # clients add a slash, too
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["request_id"] and body["revision"]
    data = body["data"]
    assert data["$schema"] == "http://json-schema.org/draft-04/schema#" == DRAFT_04
    assert data["_id"] == data["id"] == "faxes"
    assert data["type"] == "object"
    assert data["description"].startswith("Faxes API")
    assert data["required"] == ["from_number", "to_number"] == required_of(FaxIn)


async def test_a_token_is_neither_needed_nor_checked(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    anonymous = await fetch_schema(client, "faxes")
    with_token = await client.get("/v2/schemas/faxes", headers=auth(tenant))
    wrong_token = await client.get("/v2/schemas/faxes", headers=auth("not-a-token"))
    assert with_token.json()["data"] == wrong_token.json()["data"] == anonymous


async def test_an_unknown_name_is_404_in_kazoos_error_shape(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/v2/schemas/accounts"), 404)
    assert body["message"] == "bad_identifier"
    assert body["data"] == {"message": "bad identifier", "cause": "accounts"}


async def test_schemas_are_read_only(client: httpx.AsyncClient) -> None:
    response = await client.put("/v2/schemas/faxes", json={"data": {}})
    assert_error(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


async def test_the_openapi_document_lists_both_routes_as_public(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/v2/openapi.json")).json()["paths"]
    for path in ("/v2/schemas", "/v2/schemas/{name}"):
        assert paths[path]["get"]["security"] == []
    assert "404" in paths["/v2/schemas/{name}"]["get"]["responses"]


# --- the documents: from the models, self-contained draft-04 --------------------------------


@pytest.mark.parametrize(("name", "model"), [("faxes", FaxIn), ("faxbox", FaxboxIn)])
async def test_every_field_of_the_model_is_a_property(
    client: httpx.AsyncClient, name: str, model: type[BaseModel]
) -> None:
    schema = await fetch_schema(client, name)
    assert set(schema["properties"]) == fields_of(model)
    assert schema["required"] == required_of(model)


async def test_nested_models_are_inlined_with_their_fields(client: httpx.AsyncClient) -> None:
    from gateway.api.schemas import DocumentIn, EmailChannel

    schema = await fetch_schema(client, "faxes")
    document = schema["properties"]["document"]
    assert set(document["properties"]) == fields_of(DocumentIn)
    assert document["required"] == required_of(DocumentIn)
    email = schema["properties"]["notifications"]["properties"]["email"]
    assert set(email["properties"]) == fields_of(EmailChannel)
    assert email["properties"]["send_to"]["type"] == ["string", "array", "null"]


@pytest.mark.parametrize("name", ["faxes", "faxbox"])
async def test_the_document_is_self_contained_draft_04(
    client: httpx.AsyncClient, name: str
) -> None:
    schema = await fetch_schema(client, name)
    validator(schema)
    keys = {key for _, key, _ in walk(schema["properties"])} - set(schema["properties"])
    assert not keys & {"$ref", "$defs", "definitions", "const", "prefixItems", "title"}
    for path, key, value in walk(schema):
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(value, bool), path  # draft-04: a flag beside minimum/maximum


# --- the differential: the schema and the API agree ----------------------------------------


URL = "https://docs.example.com/f.pdf"


def with_document(**document: Any) -> dict[str, Any]:
    return {**GOOD_FAX, "document": document}


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("the model's example", GOOD_FAX),
    ("only the required fields and a document", {**GOOD_FAX, "retries": None, "to_name": None}),
    ("send_to as a list", {**GOOD_FAX, "notifications": {"sms": {"send_to": ["+14155550111"]}}}),
    ("unknown keys, as Kazoo allows", {**GOOD_FAX, "custom_sip_headers": {"X-A": "b"}}),
    ("null for an optional object", {**GOOD_FAX, "notifications": None}),
    ("the largest retries", {**GOOD_FAX, "retries": 20}),
    ("a post document", with_document(url=URL, method="post", content="x" * 256)),
]  # fmt: skip
REJECTED: list[tuple[str, dict[str, Any]]] = [
    ("no to_number", {k: v for k, v in GOOD_FAX.items() if k != "to_number"}),
    ("no from_number", {k: v for k, v in GOOD_FAX.items() if k != "from_number"}),
    ("null to_number", {**GOOD_FAX, "to_number": None}),
    ("empty from_number", {**GOOD_FAX, "from_number": ""}),
    ("retries over the maximum", {**GOOD_FAX, "retries": 21}),
    ("negative retries", {**GOOD_FAX, "retries": -1}),
    ("retries not a number", {**GOOD_FAX, "retries": [3]}),
    ("to_name too long", {**GOOD_FAX, "to_name": "n" * 129}),
    ("a document without url", with_document(method="get")),
    ("an unknown method", with_document(url=URL, method="put")),
    ("document content too long", with_document(url=URL, content="x" * 257)),
    ("send_to an object", {**GOOD_FAX, "notifications": {"email": {"send_to": {"a": "b"}}}}),
    ("send_to too many", {**GOOD_FAX, "notifications": {"sms": {"send_to": ["1"] * 21}}}),
    ("an empty send_to entry", {**GOOD_FAX, "notifications": {"sms": {"send_to": [""]}}}),
    ("notifications a string", {**GOOD_FAX, "notifications": "me@example.com"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "accepted"),
    [(case, body, True) for case, body in ACCEPTED]
    + [(case, body, False) for case, body in REJECTED],
    ids=[case for case, _ in ACCEPTED + REJECTED],
)
async def test_the_faxes_schema_and_the_api_agree(
    client: httpx.AsyncClient, tenant: Tenant, case: str, body: dict[str, Any], accepted: bool
) -> None:
    schema = await fetch_schema(client, "faxes")
    response = await client.put(faxes_url(tenant), headers=auth(tenant), json={"data": body})
    assert response.status_code == (201 if accepted else 400), response.text
    errors = [error.message for error in validator(schema).iter_errors(body)]
    assert (not errors) == accepted, errors


FAXBOX_ACCEPTED: list[dict[str, Any]] = [
    FaxboxIn.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
    {"name": "Plain", "paper": None, "resolution": "standard", "retries": 1},
]
FAXBOX_REJECTED: list[dict[str, Any]] = [
    {"caller_id": "+14155550111"},
    {"name": "Bad paper", "paper": "legal"},
    {"name": "Bad retries", "retries": 0},
    {"name": "Bad region", "default_region": "USA"},
    {"name": "Short password", "smtp_password": "1234567"},
    {"name": "Bad flag", "cover_page": "maybe"},
]


@pytest.mark.parametrize(
    ("body", "accepted"),
    [(body, True) for body in FAXBOX_ACCEPTED] + [(body, False) for body in FAXBOX_REJECTED],
)
async def test_the_faxbox_schema_and_the_api_agree(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], accepted: bool
) -> None:
    schema = await fetch_schema(client, "faxbox")
    url = f"/v2/accounts/{tenant.account_id}/faxboxes"
    response = await client.put(url, headers=auth(tenant), json={"data": body})
    assert response.status_code == (201 if accepted else 400), response.text
    assert validator(schema).is_valid(body) == accepted


# --- the conversion, on constructs the request models do not use yet ------------------------


class Node(BaseModel):
    label: str
    children: list[Node] = []


def test_a_recursive_model_cannot_be_made_self_contained() -> None:
    with pytest.raises(ValueError, match="recursive model Node"):
        model_schema(Node)


def test_an_unknown_keyword_is_an_error_not_a_looser_schema() -> None:
    class Odd(BaseModel):
        model_config = {"json_schema_extra": {"dependentRequired": {"a": ["b"]}}}

        a: int | None = None

    with pytest.raises(ValueError, match="dependentRequired"):
        model_schema(Odd)


def test_2020_12_spellings_become_draft_04_ones() -> None:
    from pydantic import Field

    class Spelled(BaseModel):
        above: float = Field(gt=0)
        pair: tuple[int, str]

    schema = model_schema(Spelled)
    assert schema["properties"]["above"] == {
        "exclusiveMinimum": True,
        "minimum": 0,
        "type": "number",
    }
    pair = schema["properties"]["pair"]
    assert pair["items"] == [{"type": "integer"}, {"type": "string"}]
    check = validator({"$schema": DRAFT_04, **schema})
    assert check.is_valid({"above": 0.5, "pair": [1, "a"]})
    assert not check.is_valid({"above": 0, "pair": [1, "a"]})
    assert not check.is_valid({"above": 1, "pair": ["a", 1]})
