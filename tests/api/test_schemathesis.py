"""Schemathesis against /v2/openapi.json over a real socket: valid and invalid requests to every
operation, with real ids in the paths, and not one 5xx (a client error is always a 4xx).

Bounded (``EXAMPLES`` per operation and mode, derandomized) so that it runs in ``make test``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from starlette.applications import Starlette

from gateway.api.server import serve_http
from gateway.config import HttpSettings, Settings
from gateway.models import Direction, FaxStatus, RecipientOutcome, SmtpLogEntry
from gateway.store import Store
from tests.api.conftest import ADMIN, seed_fax
from tests.conftest import Clock, Tenant, make_settings

EXAMPLES = 30


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Generated wrong API keys would otherwise get 127.0.0.1 refused (429) for every later
    # operation, and those would go untested.
    http = {"admin_token": ADMIN, "cursor_secret": "test-secret", "auth_failure_limit": 10**9}
    return make_settings(tmp_path, http=http)


async def test_no_5xx_for_any_generated_request(
    app: Starlette, store: Store, tenant: Tenant, clock: Clock
) -> None:
    ids = {
        "account_id": tenant.account_id,
        "fax_id": (await seed_fax(store, tenant, FaxStatus.COMPLETED)).id,
        "faxbox_id": tenant.faxbox.id,
        "log_id": "log-1",
    }
    await seed_fax(store, tenant, FaxStatus.COMPLETED, Direction.INBOUND)
    await store.write_smtplog(
        SmtpLogEntry(
            id="log-1",
            created=clock() - 1,
            recipients=[RecipientOutcome("x@fax.test", "250", account_id=tenant.account_id)],
            reply_code=250,
        )
    )
    stop = asyncio.Event()
    ports: list[int] = []
    server = asyncio.create_task(serve_http(app, HttpSettings(port=0), stop, ports.append))
    while not ports:
        assert not server.done()
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{ports[0]}"
    try:
        failures = await asyncio.to_thread(_run, base, ids, tenant.auth_token)
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
    assert not failures, "\n".join(failures)


def _run(base: str, ids: dict[str, str], token: str) -> list[str]:
    session = requests.Session()
    spec = session.get(f"{base}/v2/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # the seeded ids live longer
    assert len(operations) >= 20
    for operation in operations:
        token_for_op = ADMIN if operation.path.startswith("/v2/faxes") else token
        fixed = {name: value for name, value in ids.items() if "{" + name + "}" in operation.path}
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(
                generation_mode=mode,
                path_parameters=fixed or None,
                headers={"X-Auth-Token": token_for_op},
            )
            _explore(strategy, _checker(session, base, failures))
    return failures


def _checker(session: requests.Session, base: str, failures: list[str]) -> Callable[[Any], None]:
    def check(case: Any) -> None:
        response = case.call(base_url=base, session=session, timeout=10)
        if response.status_code >= 500:  # collected, to report every one at the end
            failures.append(
                f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}"
                f" {response.text[:200]}"
            )
        content_type = (response.headers.get("content-type") or [""])[0]
        if content_type.startswith("application/json"):
            assert content_type == "application/json", content_type

    return check


def _explore(strategy: Any, check: Callable[[Any], None]) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def explore(case: Any) -> None:
        check(case)

    # Unsatisfiable: nothing to make invalid (no parameters, no body); the positive run covers it.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        explore()
