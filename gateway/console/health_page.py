"""Health as a page: the figures ``/metrics`` reads from the store (queue depth, oldest
unfinished job, faxes by status, notification backlog), lines busy (outbound faxes being sent
now), recent failure classes from the attempts of recent faxes, and every part's check."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import Response

from gateway.console.web import Refused, console_of, render, session_of

RECENT = 200


async def health_page(request: Request) -> Response:
    session = session_of(request)
    if not session.is_admin:
        raise Refused(403, "The health page shows the whole gateway: sign in with the admin token.")
    console = console_of(request)
    store = console.api.store
    stats = await store.queue_stats()
    now = store.clock()
    oldest = stats.oldest_unfinished
    busy = stats.faxes.get(("outbound", "processing"), 0)
    failures: Counter[str] = Counter()
    for fax in await store.recent_faxes(None, RECENT):
        if fax.attempts and fax.tx_result and not fax.tx_result.get("success"):
            for attempt in await store.fax_attempts(fax.id):
                if attempt.get("failure_class"):
                    failures[str(attempt["failure_class"])] += 1
    report = await console.health.check()
    context = {
        "stats": stats,
        "due": stats.due,
        "oldest_age": None if oldest is None else max(0.0, now - oldest),
        "busy": busy,
        "lines": console.api.settings.worker.lines,
        "failures": failures.most_common(),
        "checks": report.checks,
        "by_status": sorted(stats.faxes.items()),
        "backlog": stats.notification_backlog,
    }
    return render(request, "health.html", context)
