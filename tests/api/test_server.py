"""The API over a real uvicorn socket in the test's own event loop."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.api.server import serve_http
from gateway.config import HttpSettings
from gateway.errors import ConfigError
from gateway.store import Store
from tests.api.conftest import auth, faxes_url
from tests.builders import pdf_bytes
from tests.conftest import Tenant


@pytest.fixture
async def served(app: Starlette) -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Task[None]]]:
    stop = asyncio.Event()
    ports: list[int] = []
    task = asyncio.create_task(serve_http(app, HttpSettings(port=0), stop, ports.append))
    for _ in range(200):
        if ports or task.done():
            break
        await asyncio.sleep(0.01)
    assert ports, task
    yield f"http://127.0.0.1:{ports[0]}", stop, task
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_real_socket_round_trip(
    served: tuple[str, asyncio.Event, asyncio.Task[None]], tenant: Tenant, store: Store
) -> None:
    base, stop, task = served
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    async with httpx.AsyncClient(base_url=base) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        # Kazoo's documented upload: multipart/mixed, JSON part first, over the wire.
        data = json.dumps({"data": {"from_number": "+14155550199", "to_number": "4155550100"}})
        files = [
            ("content", ("fax.json", data.encode(), "application/json")),
            ("content", ("fax.pdf", pdf_bytes(1), "application/pdf")),
        ]
        created = await client.put(faxes_url(tenant), headers=auth(tenant), files=files)
        assert created.status_code == 201, created.text
        fax_id = created.json()["data"]["id"]
        listed = await client.get(faxes_url(tenant, "outgoing/"), headers=auth(tenant))
        assert [row["id"] for row in listed.json()["data"]] == [fax_id]
        missing = await client.get("/v2/none")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert "server" not in missing.headers  # no version banner
    # uvicorn left the daemon's signal handlers alone.
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    stop.set()
    await asyncio.wait_for(task, 10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=base) as client:
            await client.get("/healthz")


async def test_busy_port_is_a_config_error(app: Starlette) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            await serve_http(app, HttpSettings(port=port), asyncio.Event())


async def test_cancelling_the_server_task_closes_it(app: Starlette) -> None:
    ports: list[int] = []
    task = asyncio.create_task(serve_http(app, HttpSettings(port=0), asyncio.Event(), ports.append))
    while not ports:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}") as client:
            await client.get("/healthz")


async def curl(*args: str) -> tuple[int, str]:
    """Run curl (Kazoo's documented client) and return (HTTP status, body)."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-s", "-w", "\n%{http_code}", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_kazoos_documented_curl_calls(
    served: tuple[str, asyncio.Event, asyncio.Task[None]], tenant: Tenant, tmp_path: Path
) -> None:
    base, _, _ = served
    token = f"X-Auth-Token: {tenant.auth_token}"
    url = f"{base}/v2/accounts/{tenant.account_id}/faxes"
    data = {"from_number": "18884732963", "to_number": "18884732963", "retries": 3}
    (tmp_path / "fax.json").write_text(json.dumps({"data": data}))
    (tmp_path / "fax.pdf").write_bytes(pdf_bytes(1))
    # The upload exactly as Kazoo's docs write it: multipart/mixed forced on curl -F.
    status, body = await curl(
        "-X", "PUT", "-H", "Content-Type: multipart/mixed",
        "-F", f"content=@{tmp_path / 'fax.json'}; type=application/json",
        "-F", f"content=@{tmp_path / 'fax.pdf'}; type=application/pdf",
        "-H", token, url,
    )  # fmt: skip
    assert status == 201, body
    fax_id = json.loads(body)["data"]["id"]
    # By URL with curl -d (which says application/x-www-form-urlencoded).
    by_url = {**data, "document": {"url": "http://myserver.com/fax.pdf", "method": "get"}}
    status, body = await curl("-X", "PUT", "-H", token, "-d", json.dumps({"data": by_url}), url)
    assert status == 201, body
    status, body = await curl("-H", token, f"{url}/outgoing/")
    assert status == 200 and len(json.loads(body)["data"]) == 2
    status, body = await curl("-X", "DELETE", "-H", token, f"{url}/outbox/{fax_id}")
    assert status == 200 and json.loads(body)["data"]["id"] == fax_id
