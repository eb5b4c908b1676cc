"""The smtplog pages: every SMTP transaction of the account (the admin: of every account),
newest first, searchable by sender, recipient and Message-ID, and one transaction in full
with its reason in plain words and links to the faxes it made."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.cursor import Cursor
from gateway.api.errors import HttpError
from gateway.api.paging import MAX_RANGE_S
from gateway.console.reasons import reason
from gateway.console.web import Refused, console_of, render, session_of
from gateway.errors import GatewayError, NotFoundError
from gateway.models import SmtpLogEntry
from gateway.store.records import Window

PAGE_SIZE = 50
# A search reads at most this many rows per page shown (filters are applied here, not in SQL).
SCAN_LIMIT = 2000
CHUNK = 200


def _matches(entry: SmtpLogEntry, sender: str, recipient: str, message_id: str) -> bool:
    if sender and sender not in (entry.mail_from or "").lower():
        return False
    if recipient and not any(recipient in r.address.lower() for r in entry.recipients):
        return False
    return not message_id or message_id in (entry.message_id or "").lower()


async def smtplog_page(request: Request) -> Response:
    session = session_of(request)
    console = console_of(request)
    params = request.query_params
    sender = params.get("sender", "").strip().lower()[:254]
    recipient = params.get("recipient", "").strip().lower()[:254]
    message_id = params.get("message_id", "").strip().lower()[:254]
    scope = f"console:{session.account_id or 'admin'}:smtplog"
    now = console.api.clock()
    window = Window(now - MAX_RANGE_S, now + 1, None, False, CHUNK + 1)
    if start_key := params.get("start_key"):
        try:
            cursor = console.api.cursors.decode(start_key, scope)
        except (GatewayError, HttpError) as exc:  # a forged or stale start key
            raise Refused(400, "That page link is not valid any more.") from exc
        window = Window(cursor.created_from, cursor.created_to, (cursor.created, cursor.id))
        window = Window(window.created_from, window.created_to, window.start, False, CHUNK + 1)
    shown: list[SmtpLogEntry] = []
    next_key = None
    scanned = 0
    while len(shown) <= PAGE_SIZE and scanned < SCAN_LIMIT:
        rows = await console.api.store.list_smtplog(session.account_id, window)
        scanned += len(rows[:CHUNK])
        for entry in rows[:CHUNK]:
            if _matches(entry, sender, recipient, message_id):
                shown.append(entry)
        if len(rows) <= CHUNK:
            break
        extra = rows[CHUNK]
        window = Window(
            window.created_from, window.created_to, (extra.created, extra.id), False, CHUNK + 1
        )
    if len(shown) > PAGE_SIZE:
        after = shown[PAGE_SIZE]
        shown = shown[:PAGE_SIZE]
        cursor = Cursor(
            scope, window.created_from, window.created_to, False, after.created, after.id
        )
        next_key = console.api.cursors.encode(cursor)
    elif scanned >= SCAN_LIMIT and window.start is not None:
        cursor = Cursor(scope, window.created_from, window.created_to, False, *window.start)
        next_key = console.api.cursors.encode(cursor)
    context = {
        "entries": [(entry, reason(entry)) for entry in shown],
        "sender": sender,
        "recipient": recipient,
        "message_id": message_id,
        "next_key": next_key,
    }
    return render(request, "smtplog.html", context)


async def smtplog_entry(request: Request) -> Response:
    session = session_of(request)
    entry_id = str(request.path_params["entry_id"])[:64]
    try:
        entry = await console_of(request).api.store.get_smtplog(entry_id, session.account_id)
    except NotFoundError as exc:
        raise Refused(404, "There is no such SMTP transaction in your account.") from exc
    return render(request, "smtplog_entry.html", {"entry": entry, "reason": reason(entry)})
