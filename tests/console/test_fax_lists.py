"""The folder pages: filters and keyset paging."""

from __future__ import annotations

import datetime as dt
import re

import httpx

from gateway.models import Direction, FaxStatus
from gateway.store import Store
from tests.api.conftest import seed_fax
from tests.conftest import Clock, Tenant
from tests.console.conftest import CONSOLE, sign_in

ROW = re.compile(r'<a href="/console/faxes/([0-9a-f]+)">')


async def test_pages_follow_each_other_by_keyset_without_repeats(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock
) -> None:
    made = {(await seed_fax(store, tenant, created=clock() - 10 * n)).id for n in range(1, 61)}
    await sign_in(browser, tenant.auth_token)
    first = (await browser.get(f"{CONSOLE}/folders/outbox")).text
    shown = ROW.findall(first)
    assert len(shown) == 50
    link = re.search(r'rel="next" href="\?start_key=([^"]+)"', first)
    assert link, "no link to the next page"
    second = (await browser.get(f"{CONSOLE}/folders/outbox?start_key={link.group(1)}")).text
    rest = ROW.findall(second)
    assert len(rest) == 10 and 'rel="next"' not in second
    assert set(shown) | set(rest) == made and not set(shown) & set(rest)
    forged = await browser.get(f"{CONSOLE}/folders/outbox?start_key=abc{link.group(1)}")
    assert forged.status_code == 400


async def test_filters_by_status_number_and_date(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock
) -> None:
    old = await seed_fax(store, tenant, created=clock() - 5 * 86400, to_number="+14155550111")
    failed = await seed_fax(store, tenant, FaxStatus.FAILED, created=clock() - 60)
    inbound = await seed_fax(store, tenant, direction=Direction.INBOUND, created=clock() - 60)
    await sign_in(browser, tenant.auth_token)

    async def ids(folder: str, **params: str) -> set[str]:
        page = await browser.get(f"{CONSOLE}/folders/{folder}", params=params)
        return set(ROW.findall(page.text))

    assert await ids("outbox") == {old.id, failed.id}
    assert await ids("outbox", status="failed") == {failed.id}
    assert await ids("outbox", number="+14155550111") == {old.id}
    day = dt.datetime.fromtimestamp(clock() - 86400, dt.UTC).date().isoformat()
    assert await ids("outbox", **{"from": day}) == {failed.id}
    assert await ids("inbox") == {inbound.id}
