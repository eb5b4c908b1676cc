"""Walk every route and verb of the app with a second account's token: nothing of the first
account is seen or changed, and the answers do not tell its objects exist."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.models import Direction, FaxStatus, RecipientOutcome, SmtpLogEntry
from gateway.store import Store
from tests.api.conftest import auth, seed_fax
from tests.conftest import Clock, Tenant
from tests.stores import raw

# /console only redirects to /console/, whose session sign-in and account isolation are
# tested in tests/console.
PUBLIC = {
    "/healthz",
    "/v2/openapi.json",
    "/v2/api_auth",
    "/v2/schemas",
    "/v2/schemas/{name}",
    "/console",
}
ADMIN_ONLY = {"/v2/faxes/smtplog", "/v2/faxes/smtplog/{log_id}"}
FOLDERS = ("outgoing", "outbox", "incoming", "inbox")
BODIES: dict[str, Any] = {
    "PUT": {
        "action": "resubmit",
        "data": {
            "name": "stolen",
            "to_number": "+14155550100",
            "from_number": "+14155550199",
            "document": {"url": "https://docs.example.com/a.pdf"},
        },
    },
    "POST": {"data": {"name": "stolen"}},
    "PATCH": {"data": {"name": "stolen"}},
    "DELETE": None,
    "GET": None,
}


async def snapshot(store: Store, account_id: str) -> list[Any]:
    rows = []
    for table, where in (
        ("faxes", "account_id = ?"),
        ("faxboxes", "account_id = ?"),
        ("smtplog", "account_id = ?"),
        ("fax_documents", "fax_id IN (SELECT id FROM faxes WHERE account_id = ?)"),
    ):
        found = await raw(store).fetchall(
            f"SELECT * FROM {table} WHERE {where} ORDER BY 1", (account_id,)
        )
        rows.append([tuple(r) for r in found])
    return rows


def concrete(path: str, account: str, ids: dict[str, str], folder: str) -> str:
    return (
        path.replace("{account_id}", account)
        .replace("{folder:folder}", folder)
        .replace("{fax_id}", ids[folder])
        .replace("{faxbox_id}", ids["faxbox"])
        .replace("{log_id}", ids["log"])
    )


async def test_second_account_sees_and_changes_nothing(
    app: Starlette,
    client: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    other: Tenant,
    clock: Clock,
) -> None:
    victim = tenant
    ids = {
        "outgoing": (await seed_fax(store, victim, FaxStatus.PENDING)).id,
        "outbox": (await seed_fax(store, victim, FaxStatus.COMPLETED)).id,
        "incoming": (await seed_fax(store, victim, FaxStatus.PROCESSING, Direction.INBOUND)).id,
        "inbox": (await seed_fax(store, victim, FaxStatus.COMPLETED, Direction.INBOUND)).id,
        "faxbox": victim.faxbox.id,
        "log": "victim-log",
    }
    await store.write_smtplog(
        SmtpLogEntry(
            id="victim-log",
            created=clock() - 5,
            mail_from="secret@victim.test",
            recipients=[RecipientOutcome("x@fax.test", "250", account_id=victim.account_id)],
            reply_code=250,
        )
    )
    before = await snapshot(store, victim.account_id)
    secrets = [v for k, v in ids.items()] + [victim.account_id, "secret@victim.test"]

    walked = 0
    routes = [r for r in app.routes if isinstance(r, Route)]
    for route, folder in itertools.product(routes, FOLDERS):
        if route.path in PUBLIC or ("{folder" not in route.path and folder != "outbox"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            body = BODIES[method]
            kwargs: dict[str, Any] = {"json": body} if body is not None else {}
            # 1. The victim's path (and objects) with the attacker's token.
            url = concrete(route.path, victim.account_id, ids, folder)
            response = await client.request(method, url, headers=auth(other), **kwargs)
            expected = 403 if route.path in ADMIN_ONLY else 404
            assert response.status_code == expected, (method, url, response.text)
            assert not any(s in response.text for s in secrets if s not in url), (method, url)
            # 2. The attacker's own path with the victim's object ids.
            url = concrete(route.path, other.account_id, ids, folder)
            response = await client.request(method, url, headers=auth(other), **kwargs)
            if "_id}" in route.path.replace("{account_id}", ""):
                assert response.status_code in (403, 404), (method, url, response.text)
            assert not any(s in response.text for s in secrets if s not in url), (method, url)
            walked += 1
    assert walked >= 37  # every (route, method, folder) of the app
    assert await snapshot(store, victim.account_id) == before
