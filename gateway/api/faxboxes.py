"""Faxboxes: list, create (``PUT``), read, replace (``POST``), change (``PATCH``), delete.

A field sent as ``null``, or left out of a ``POST``, goes back to its default; ``smtp_password``
is write-only and kept unless sent (``null`` removes it). ``smtp_email_address`` is generated;
``custom_smtp_email_address`` must be unique across every faxbox's addresses.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

from starlette.responses import Response

from gateway import credentials
from gateway.api.context import Call
from gateway.api.errors import field_error, parse_model
from gateway.api.intake import e164
from gateway.api.responses import envelope
from gateway.api.schemas import FaxboxFields, FaxboxIn, send_to_list
from gateway.api.uploads import envelope_data, read_json_object
from gateway.models import Faxbox
from gateway.routing import validate_rule
from gateway.views import faxbox_view

_TEXT = ("caller_name", "fax_header", "fax_identity", "owner_email", "custom_smtp_email_address")
_SETTINGS = (
    "retries",
    "resolution",
    "paper",
    "cover_page",
    "include_body",
    "attach_pdf",
    "fax_timezone",
)
ALL_FIELDS = frozenset(FaxboxFields.model_fields)


def _template(call: Call) -> Faxbox:
    """A faxbox of this account with every default (as the CLI would create it)."""
    settings = call.api.settings
    return Faxbox(
        id="",
        account_id=call.account_id,
        name="",
        smtp_email_address="",
        default_region=settings.smtp.default_region.upper(),
        paper=settings.render.paper,
    )


def _apply(fields: FaxboxFields, box: Faxbox, sent: frozenset[str], defaults: Faxbox) -> Faxbox:
    changes: dict[str, Any] = {}
    if "name" in sent:
        if not fields.name:
            raise field_error("name", "required", "name is required")
        changes["name"] = fields.name
    for name in _TEXT:
        if name in sent:
            changes[name] = getattr(fields, name) or None
    for name in (*_SETTINGS, "default_region"):
        if name in sent:
            value = getattr(fields, name)
            changes[name] = getattr(defaults, name) if value is None else value
    if "default_region" in changes:
        changes["default_region"] = changes["default_region"].upper()
    region = changes.get("default_region", box.default_region)
    for name in ("caller_id", "fax_number"):
        if name in sent:
            value = getattr(fields, name)
            changes[name] = e164(name, value, region) if value else None
    if "smtp_permission_list" in sent:
        rules = fields.smtp_permission_list or []
        changes["smtp_permission_list"] = tuple(validate_rule(rule) for rule in rules)
    if "notifications" in sent:
        notes = fields.notifications
        for direction in ("outbound", "inbound"):
            channel = getattr(notes, direction) if notes else None
            email = channel.email if channel else None
            changes[f"{direction}_notify"] = tuple(send_to_list(email.send_to if email else None))
    return replace(box, **changes)


async def _check_address(call: Call, box: Faxbox, before: str | None = None) -> None:
    custom = box.custom_smtp_email_address
    if not custom:
        return
    if await call.store.smtp_address_taken(custom, box.id or None):
        raise field_error("custom_smtp_email_address", "unique", "email address must be unique")
    smtp = call.api.settings.smtp
    domain = smtp.default_smtp_domain.lower().rstrip(".")
    if re.fullmatch(r"[0-9a-f]{8}\." + re.escape(domain), custom):
        # The shape of generated addresses: one day it would be another faxbox's.
        raise field_error(
            "custom_smtp_email_address", "pattern", "reserved for generated addresses"
        )
    # The default domain and every name under it are the gateway's own (generated addresses
    # live there), and so is its host name: a tenant who claimed one would take mail meant
    # for other faxboxes. A value the operator already gave this faxbox may be sent back.
    own = custom in (domain, smtp.hostname.lower().rstrip(".")) or custom.endswith("." + domain)
    if own and custom != before:
        raise field_error(
            "custom_smtp_email_address",
            "pattern",
            f"{custom} belongs to this gateway; use a domain of your own",
        )


async def _save_password(call: Call, box: Faxbox, fields: FaxboxFields) -> Faxbox:
    if "smtp_password" not in fields.model_fields_set:
        return box
    if fields.smtp_password is None:
        await call.store.clear_faxbox_password(box.id, call.account_id)
        return await call.store.get_faxbox(box.id, call.account_id)
    # scrypt is deliberately slow (~50 ms of CPU): never on the event loop.
    hashed = await asyncio.to_thread(credentials.hash_password, fields.smtp_password)
    return await call.store.update_faxbox(box, hashed)


async def _body(call: Call) -> dict[str, Any]:
    body = await read_json_object(call.request, call.api.settings.http.max_body_bytes)
    return envelope_data(body)


async def list_faxboxes(call: Call) -> Response:
    boxes = await call.store.faxboxes_of_account(call.account_id)
    data = [faxbox_view(box) for box in boxes]
    return envelope(call.request, data, extra={"page_size": len(data)})


async def create_faxbox(call: Call) -> Response:
    fields = parse_model(FaxboxIn, await _body(call))
    template = _template(call)
    box = _apply(fields, template, ALL_FIELDS, template)
    await _check_address(call, box)
    created = await call.store.create_faxbox(box, call.api.settings.smtp.default_smtp_domain)
    created = await _save_password(call, created, fields)
    location = f"/v2/accounts/{call.account_id}/faxboxes/{created.id}"
    return envelope(call.request, faxbox_view(created), 201, headers={"Location": location})


async def get_faxbox(call: Call) -> Response:
    box = await call.store.get_faxbox(str(call.request.path_params["faxbox_id"]), call.account_id)
    return envelope(call.request, faxbox_view(box))


async def replace_faxbox(call: Call) -> Response:
    """``POST``: the body is the whole faxbox; what it leaves out goes back to the default."""
    box = await call.store.get_faxbox(str(call.request.path_params["faxbox_id"]), call.account_id)
    fields = parse_model(FaxboxIn, await _body(call))
    return await _update(call, box, fields, ALL_FIELDS)


async def patch_faxbox(call: Call) -> Response:
    """``PATCH``: only the fields sent change."""
    box = await call.store.get_faxbox(str(call.request.path_params["faxbox_id"]), call.account_id)
    fields = parse_model(FaxboxFields, await _body(call))
    return await _update(call, box, fields, frozenset(fields.model_fields_set))


async def _update(call: Call, box: Faxbox, fields: FaxboxFields, sent: frozenset[str]) -> Response:
    changed = _apply(fields, box, sent, _template(call))
    await _check_address(call, changed, box.custom_smtp_email_address)
    saved = await call.store.update_faxbox(changed)
    saved = await _save_password(call, saved, fields)
    return envelope(call.request, faxbox_view(saved))


async def delete_faxbox(call: Call) -> Response:
    faxbox_id = str(call.request.path_params["faxbox_id"])
    deleted = await call.store.delete_faxbox(faxbox_id, call.account_id)
    return envelope(call.request, faxbox_view(deleted))
