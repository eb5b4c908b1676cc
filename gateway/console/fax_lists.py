"""The folder pages: outbox, outgoing, inbox (and incoming), newest first, filtered by status,
number and date range, one keyset page at a time through the store's ``list_faxes`` (the call
behind the API's folder lists) with a signed start key as the API's."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.cursor import Cursor
from gateway.api.errors import HttpError
from gateway.api.faxes import FOLDERS
from gateway.api.lists import FINAL_FOLDERS
from gateway.api.paging import MAX_RANGE_S
from gateway.console.web import Refused, account_of, console_of, render, session_of
from gateway.errors import GatewayError
from gateway.models import Direction
from gateway.store.records import Window

PAGE_SIZE = 50
RECENT_FOR_ADMIN = 500
STATUSES = ("attaching_files", "pending", "processing", "completed", "failed")


def _day(text: str, end: bool) -> float | None:
    """A YYYY-MM-DD date (UTC) as Unix seconds: its start, or with ``end`` the next day's."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    return start + 86400 if end else start


async def folder_page(request: Request) -> Response:
    session = session_of(request)
    console = console_of(request)
    folder = str(request.path_params["folder"])
    if folder not in FOLDERS:
        raise Refused(404, "There is no such folder.")
    account = account_of(request, session)
    params = request.query_params
    context: dict[str, object] = {
        "folder": folder,
        "account": account,
        "statuses": STATUSES,
        "status": params.get("status", ""),
        "number": params.get("number", "")[:64],
        "date_from": params.get("from", "")[:10],
        "date_to": params.get("to", "")[:10],
        "faxes": [],
        "next_key": None,
        "error": None,
        "recent_accounts": [],
    }
    if account is None:
        # The admin has not chosen an account yet: offer those with the latest faxes.
        recent = await console.api.store.recent_faxes(None, RECENT_FOR_ADMIN)
        context["recent_accounts"] = list(dict.fromkeys(fax.account_id for fax in recent))
        return render(request, "faxes.html", context)
    direction = FOLDERS[folder]
    scope = f"console:{account}:{folder}"
    now = console.api.clock()
    start = None
    start_key = params.get("start_key")
    try:
        if start_key:
            cursor = console.api.cursors.decode(start_key, scope)
            created_from, created_to = cursor.created_from, cursor.created_to
            start = (cursor.created, cursor.id)
        else:
            created_to = _day(str(context["date_to"]), end=True) or now + 1
            created_from = _day(str(context["date_from"]), end=False) or created_to - MAX_RANGE_S
    except (GatewayError, HttpError) as exc:  # a forged or stale start key
        raise Refused(400, "That page link is no longer valid: start again.") from exc
    filters: dict[str, str] = {}
    if context["status"] in STATUSES:
        filters["status"] = str(context["status"])
    if context["number"]:
        side = "to_number" if direction is Direction.OUTBOUND else "from_number"
        filters[side] = str(context["number"])
    window = Window(created_from, created_to, start, False, PAGE_SIZE + 1)
    final = folder in FINAL_FOLDERS
    rows = await console.api.store.list_faxes(account, direction, final, window, filters)
    context["faxes"] = rows[:PAGE_SIZE]
    if len(rows) > PAGE_SIZE:
        extra = rows[PAGE_SIZE]
        cursor = Cursor(scope, created_from, created_to, False, extra.created, extra.id)
        context["next_key"] = console.api.cursors.encode(cursor)
    return render(request, "faxes.html", context)
