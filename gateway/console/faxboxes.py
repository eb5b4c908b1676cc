"""Faxboxes: the account's list, and a form for the settings people change most (sender
rules, caller id and name, fax header, notification addresses).

A saved form goes through the API's own path: the ``FaxboxFields`` model, the API's
``_apply`` (numbers to E.164, sender rules checked) and ``update_faxbox``; a refusal shows the
API's message beside the form.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api import faxboxes as api_faxboxes
from gateway.api.context import Call, Principal
from gateway.api.errors import HttpError, parse_model
from gateway.api.schemas import FaxboxFields
from gateway.console.web import (
    Refused,
    account_of,
    console_of,
    form_of,
    redirect,
    render,
    session_of,
)
from gateway.errors import InvalidFieldError, NotFoundError
from gateway.models import Faxbox

EDITED = ("caller_id", "caller_name", "fax_header", "smtp_permission_list", "notifications")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


async def faxboxes_page(request: Request) -> Response:
    session = session_of(request)
    account = account_of(request, session)
    boxes: list[Faxbox] = []
    if account is not None:
        boxes = await console_of(request).api.store.faxboxes_of_account(account)
    return render(request, "faxboxes.html", {"account": account, "boxes": boxes})


async def _faxbox(request: Request) -> tuple[Faxbox, str]:
    session = session_of(request)
    faxbox_id = str(request.path_params["faxbox_id"])[:64]
    try:
        box = await console_of(request).api.store.get_faxbox(faxbox_id, session.account_id)
    except NotFoundError as exc:
        raise Refused(404, "There is no such faxbox in your account.") from exc
    return box, box.account_id


def _form_values(box: Faxbox) -> dict[str, str]:
    return {
        "caller_id": box.caller_id or "",
        "caller_name": box.caller_name or "",
        "fax_header": box.fax_header or "",
        "smtp_permission_list": "\n".join(box.smtp_permission_list),
        "outbound_notify": "\n".join(box.outbound_notify),
        "inbound_notify": "\n".join(box.inbound_notify),
    }


async def edit_page(request: Request) -> Response:
    box, _ = await _faxbox(request)
    context = {
        "box": box,
        "values": _form_values(box),
        "errors": {},
        "saved": "saved" in request.query_params,
    }
    return render(request, "faxbox.html", context)


def _messages(exc: HttpError | InvalidFieldError) -> dict[str, str]:
    if isinstance(exc, InvalidFieldError):
        return {exc.field: exc.message}
    found: dict[str, str] = {}
    for field, rules in exc.data.items():
        if isinstance(rules, dict):
            words = [
                str(r.get("message", rule)) for rule, r in rules.items() if isinstance(r, dict)
            ]
            found[str(field)] = "; ".join(words) or exc.message
    return found or {"form": exc.message}


async def save(request: Request) -> Response:
    form = await form_of(request)
    box, account_id = await _faxbox(request)
    console = console_of(request)
    data: dict[str, Any] = {
        "caller_id": form.get("caller_id", "").strip() or None,
        "caller_name": form.get("caller_name", "").strip() or None,
        "fax_header": form.get("fax_header", "").strip() or None,
        "smtp_permission_list": _lines(form.get("smtp_permission_list", "")),
        "notifications": {
            "outbound": {"email": {"send_to": _lines(form.get("outbound_notify", ""))}},
            "inbound": {"email": {"send_to": _lines(form.get("inbound_notify", ""))}},
        },
    }
    call = Call(request, console.api, Principal(account_id, ""), account_id)
    try:
        fields = parse_model(FaxboxFields, data)
        changed = api_faxboxes._apply(fields, box, frozenset(EDITED), api_faxboxes._template(call))
        await console.api.store.update_faxbox(changed)
    except (HttpError, InvalidFieldError) as exc:
        values = {key: form.get(key, "") for key in _form_values(box)}
        context = {"box": box, "values": values, "errors": _messages(exc), "saved": False}
        return render(request, "faxbox.html", context, 400)
    return redirect(f"/faxboxes/{box.id}?saved=1")
