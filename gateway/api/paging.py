"""List queries as Kazoo clients write them: ``page_size``, ``start_key``, ``ascending``,
``paginate=false``, ``created_from``/``created_to`` (Gregorian seconds) and ``filter_<field>``.

A page is read by keyset: the store is asked for ``page_size + 1`` rows from the start key; the
extra row, if any, is where the next page starts (its key signed into ``next_start_key``).
Unknown parameters (jQuery's ``_=``, ``status=``) are ignored.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.cursor import Cursor, CursorSigner
from gateway.api.errors import field_error
from gateway.api.responses import dumps, envelope_json
from gateway.store.records import Window
from gateway.views import GREGORIAN_OFFSET, gregorian

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
UNPAGINATED_CHUNK = 1000
# Kazoo's crossbar maximum_range: 31 days and one hour.
MAX_RANGE_S = 2_682_000
_TRUE = {"true", "1", "yes"}

T = TypeVar("T")


@dataclass(frozen=True)
class ListQuery:
    scope: str
    created_from: int  # Gregorian seconds, inclusive
    created_to: int  # Gregorian seconds, inclusive
    ascending: bool
    page_size: int | None  # None: paginate=false
    start: Cursor | None
    start_key: str | None
    filters: dict[str, str] = field(default_factory=dict)

    def cursor(self, row_key: tuple[float, str]) -> Cursor:
        """A cursor for this query that starts at the row with ``row_key``."""
        created, row_id = row_key
        return Cursor(
            self.scope, self.created_from, self.created_to, self.ascending, created, row_id
        )

    def window(self) -> Window:
        # A row shows created = round(unix) + offset, so the Gregorian range [from, to] holds
        # the rows whose Unix time rounds into it.
        return Window(
            created_from=self.created_from - GREGORIAN_OFFSET - 0.5,
            created_to=self.created_to - GREGORIAN_OFFSET + 0.5,
            start=(self.start.created, self.start.id) if self.start else None,
            ascending=self.ascending,
            limit=None if self.page_size is None else self.page_size + 1,
        )


def _gregorian_param(request: Request, name: str) -> int | None:
    """Kazoo rounds fractions and silently ignores garbage and non-positive values."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return round(value)


def _page_size(request: Request) -> int | None:
    if request.query_params.get("paginate", "").lower() == "false":
        return None
    raw = request.query_params.get("page_size")
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError as exc:
        raise field_error("page_size", "type", "page_size must be an integer") from exc
    if size < 1:
        raise field_error("page_size", "minimum", "page size must be at least 1")
    if size > MAX_PAGE_SIZE:
        raise field_error("page_size", "maximum", f"page size must be at most {MAX_PAGE_SIZE}")
    return size


def parse_list_query(request: Request, scope: str, now: float, signer: CursorSigner) -> ListQuery:
    params = request.query_params
    page_size = _page_size(request)
    filters = {
        key[len("filter_") :]: value
        for key, value in params.items()
        if key.startswith("filter_") and len(key) > len("filter_")
    }
    start_key = params.get("start_key") or None
    if start_key is not None:
        # The cursor carries its query: later pages read the same range in the same order.
        cursor = signer.decode(start_key, scope)
        return ListQuery(
            scope,
            round(cursor.created_from),
            round(cursor.created_to),
            cursor.ascending,
            page_size,
            cursor,
            start_key,
            filters,
        )
    created_to = _gregorian_param(request, "created_to")
    created_from = _gregorian_param(request, "created_from")
    if created_to is None:
        created_to = gregorian(now) or 0
    if created_from is None:
        created_from = created_to - MAX_RANGE_S
    if created_to < created_from:
        raise field_error(
            "created_from",
            "date_range",
            f"created_to {created_to} is prior to created_from {created_from}",
            cause=created_from,
        )
    if created_to - created_from > MAX_RANGE_S:
        raise field_error(
            "created_from",
            "date_range",
            f"created_to {created_to} is more than {MAX_RANGE_S} seconds from"
            f" created_from {created_from}",
            cause=created_from,
        )
    ascending = params.get("ascending", "").lower() in _TRUE
    return ListQuery(scope, created_from, created_to, ascending, page_size, None, None, filters)


Fetch = Callable[[Window], Awaitable[Sequence[T]]]


async def list_response(
    request: Request,
    query: ListQuery,
    fetch: Fetch[T],
    key: Callable[[T], tuple[float, str]],
    view: Callable[[T], dict[str, Any]],
    signer: CursorSigner,
) -> Response:
    """The list envelope: one page of rows, ``start_key`` and, unless last, ``next_start_key``.

    ``paginate=false`` reads the range in chunks (``UNPAGINATED_CHUNK`` rows, by keyset) and
    yields to the event loop between them: a busy account's whole month must not stall every
    other request while it is read and encoded.
    """
    window = query.window()
    limit = query.page_size or UNPAGINATED_CHUNK
    encoded: list[bytes] = []
    first: T | None = None
    while True:
        rows = await fetch(replace(window, limit=limit + 1))
        shown = rows[:limit]
        first = first if first is not None or not shown else shown[0]
        encoded.extend(dumps(view(row)) for row in shown)
        if len(rows) <= limit:
            extra: dict[str, Any] = {}
            break
        if query.page_size is not None:
            extra = {"next_start_key": signer.encode(query.cursor(key(rows[limit])))}
            break
        window = replace(window, start=key(rows[limit]))
        await asyncio.sleep(0)
    if query.start_key is not None:
        extra["start_key"] = query.start_key
    elif first is not None:
        extra["start_key"] = signer.encode(query.cursor(key(first)))
    extra["page_size"] = len(encoded)
    return envelope_json(request, b"[" + b",".join(encoded) + b"]", extra=extra)
