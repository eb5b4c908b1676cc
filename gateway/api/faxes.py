"""The fax endpoints: create (by URL or upload), read one, resubmit or forward, delete.

``outgoing/{id}`` and ``outbox/{id}`` both resolve any outbound fax of the account, so a job
stays reachable when it finishes (Kazoo answered 404 once it moved); likewise ``incoming`` and
``inbox`` for inbound faxes.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.responses import Response

from gateway.api import intake
from gateway.api.context import Call
from gateway.api.errors import field_error, parse_model
from gateway.api.responses import envelope
from gateway.api.schemas import FaxFields, FaxIn
from gateway.api.uploads import read_create_request, read_json_object
from gateway.errors import InvalidFieldError, NotFoundError
from gateway.models import Direction, Fax, Faxbox
from gateway.views import fax_view

FOLDERS = {
    "outgoing": Direction.OUTBOUND,
    "outbox": Direction.OUTBOUND,
    "incoming": Direction.INBOUND,
    "inbox": Direction.INBOUND,
}
ACTIONS = {Direction.OUTBOUND: "resubmit", Direction.INBOUND: "forward"}


async def fax_in_folder(call: Call) -> Fax:
    """The path's fax, if it is the account's and of the folder's direction; else 404."""
    fax_id = str(call.request.path_params["fax_id"])
    fax = await call.store.get_fax(fax_id, call.account_id)
    if fax.direction is not FOLDERS[call.request.path_params["folder"]]:
        raise NotFoundError(f"fax {fax_id} not found")
    return fax


async def _faxbox(call: Call, faxbox_id: str | None) -> Faxbox | None:
    if not faxbox_id:
        return None
    try:
        return await call.store.get_faxbox(faxbox_id, call.account_id)
    except NotFoundError as exc:
        raise InvalidFieldError("faxbox_id", "invalid", "no such faxbox") from exc


async def _created(call: Call, fax_id: str) -> Response:
    """201 with the new job, answered only now that it is committed."""
    call.api.on_created()
    fax = await call.store.get_fax(fax_id, call.account_id)
    location = f"/v2/accounts/{call.account_id}/faxes/outgoing/{fax_id}"
    return envelope(call.request, fax_view(fax, []), 201, headers={"Location": location})


async def create_fax(call: Call) -> Response:
    """``PUT .../faxes`` and ``PUT .../faxes/outgoing``: a new outbound fax."""
    settings = call.api.settings
    data, uploads = await read_create_request(call.request, settings.http.max_body_bytes)
    fields = parse_model(FaxIn, data)
    faxbox = await _faxbox(call, fields.faxbox_id)
    if not uploads and fields.document is None:
        raise field_error("document.url", "required", "add document url or upload a document")
    base = intake.base_job(call.account_id, settings, faxbox)
    job = intake.apply(fields, base, intake.region_of(settings, faxbox))
    documents = await intake.inspect_uploads(uploads, settings, call.api.office) if uploads else []
    if documents:
        job = replace(job, document_request=None)  # an upload wins: nothing is left to fetch
    fax_id = await call.store.create_fax(job, documents)
    return await _created(call, fax_id)


async def get_fax(call: Call) -> Response:
    fax = await fax_in_folder(call)
    attempts = await call.store.fax_attempts(fax.id)
    notices = await call.store.fax_notifications(fax.id)
    return envelope(call.request, fax_view(fax, attempts, notices))


async def act_on_fax(call: Call) -> Response:
    """``PUT outbox/{id}`` resubmit, ``PUT inbox/{id}`` forward: a new job from the document."""
    body = await read_json_object(call.request, call.api.settings.http.max_body_bytes)
    data = body.get("data")
    action = body.get("action")
    if action is None and isinstance(data, dict):
        action = data.get("action")  # tolerated: some clients nest it
    fax = await fax_in_folder(call)
    expected = ACTIONS[fax.direction]
    if action is None:
        raise field_error("action", "required", f"action required ({expected})")
    if action != expected:
        folder = call.request.path_params["folder"]
        raise field_error("action", "enum", f"invalid action; {folder} supports {expected!r}")
    overrides = parse_model(FaxFields, data if isinstance(data, dict) else {})
    settings = call.api.settings
    faxbox = await _faxbox(call, overrides.faxbox_id or fax.faxbox_id)
    region = intake.region_of(settings, faxbox)
    role: str | None
    if fax.direction is Direction.OUTBOUND:
        job = intake.apply(overrides, intake.copy_of(fax), region)
        if faxbox is not None:
            job = replace(job, faxbox_id=faxbox.id)
        role = "original"
    else:
        job = intake.apply(overrides, intake.base_job(call.account_id, settings, faxbox), region)
        role = "tiff"  # the received fax image is the document to send on
    intake.require_numbers(job)
    if "document" in overrides.model_fields_set and job.document_request is not None:
        role = None  # the client named a new document: fetch that one instead
    fax_id = await call.store.create_fax_copy(job, fax.id, role)
    return await _created(call, fax_id)


async def delete_fax(call: Call) -> Response:
    """Delete the fax and its documents; a pending job is cancelled, a sending one is 409."""
    fax = await fax_in_folder(call)
    deleted = await call.store.delete_fax(fax.id, call.account_id)
    return envelope(call.request, fax_view(deleted))
