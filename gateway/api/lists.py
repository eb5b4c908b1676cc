"""Folder lists (outgoing, outbox, incoming, inbox) and the smtplog: summaries, newest first,
one keyset page at a time (see ``gateway.api.paging``)."""

from __future__ import annotations

from starlette.responses import Response

from gateway.api.context import Call
from gateway.api.faxes import FOLDERS
from gateway.api.paging import list_response, parse_list_query
from gateway.api.responses import envelope
from gateway.models import Fax, SmtpLogEntry
from gateway.store.records import Window
from gateway.views import fax_summary, smtplog_summary, smtplog_view

FINAL_FOLDERS = frozenset({"outbox", "inbox"})
# Filters on fields every row of a folder shares are answered here, not by the store.
_IMPLIED = ("folder", "direction")


def _fax_key(fax: Fax) -> tuple[float, str]:
    return fax.created, fax.id


def _log_key(entry: SmtpLogEntry) -> tuple[float, str]:
    return entry.created, entry.id


async def list_folder(call: Call) -> Response:
    # PUT and GET share the explicit ".../faxes/outgoing" route, which has no {folder}.
    folder = str(call.request.path_params.get("folder", "outgoing"))
    direction = FOLDERS[folder]
    api = call.api
    query = parse_list_query(call.request, f"{call.account_id}:{folder}", api.clock(), api.cursors)
    filters = dict(query.filters)
    implied = {"folder": folder, "direction": direction.value}
    possible = all(filters.pop(name, implied[name]) == implied[name] for name in _IMPLIED)

    async def fetch(window: Window) -> list[Fax]:
        if not possible:
            return []
        final = folder in FINAL_FOLDERS
        return await call.store.list_faxes(call.account_id, direction, final, window, filters)

    return await list_response(call.request, query, fetch, _fax_key, fax_summary, api.cursors)


async def list_smtplog(call: Call) -> Response:
    """The account's SMTP transactions; for the admin route, every row (with or without one)."""
    api = call.api
    account = call.account_id or None
    scope = f"{account}:smtplog" if account else "admin:smtplog"
    query = parse_list_query(call.request, scope, api.clock(), api.cursors)

    async def fetch(window: Window) -> list[SmtpLogEntry]:
        return await call.store.list_smtplog(account, window)

    return await list_response(call.request, query, fetch, _log_key, smtplog_summary, api.cursors)


async def get_smtplog(call: Call) -> Response:
    log_id = str(call.request.path_params["log_id"])
    entry = await call.store.get_smtplog(log_id, call.account_id or None)
    return envelope(call.request, smtplog_view(entry))
