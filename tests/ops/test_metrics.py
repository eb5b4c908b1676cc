"""``GET /metrics`` shows live counters after SMTP -> render -> send through the real daemon."""

from __future__ import annotations

import asyncio
import re
import smtplib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.daemon import Daemon
from gateway.metrics import Metrics, metrics_endpoint
from gateway.models import FaxStatus
from tests.builders import make_email, pdf_bytes
from tests.conftest import make_settings, make_tenant
from tests.stores import raw


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{label_text}}}" if labels else name) + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found, f"no sample {name} {labels} in:\n{text}"
    return float(found.group(1))


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    settings = make_settings(
        tmp_path,
        worker={"poll_s": 0.05},
        render={"workers": 1},
        transport={"loopback": {"remotes": {"+1415555020*": "busy"}}},
    )
    daemon = Daemon(settings, announce=lambda line: None)
    await daemon.start()
    yield daemon
    await daemon.stop()


async def until(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_metrics_show_a_whole_run(daemon: Daemon):
    await make_tenant(daemon.store)
    pdf = make_email(attachments=[(pdf_bytes(1), "application/pdf", "doc.pdf")])
    empty = make_email(body=None)

    def mail() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port, local_hostname="c.test") as client:
            client.send_message(pdf, "alice@example.com", ["+14155550100@fax.test"])
            client.send_message(pdf, "alice@example.com", ["+14155550200@fax.test"])  # busy
            with pytest.raises(smtplib.SMTPDataError):  # 554: nothing to fax in it
                client.send_message(empty, "alice@example.com", ["+14155550100@fax.test"])

    await asyncio.to_thread(mail)

    async def attempts_done() -> bool:
        rows = await raw(daemon.store).fetchall("SELECT outcome FROM attempts")
        return sorted(r[0] for r in rows) == ["completed", "retry"]

    await until(attempts_done, "the two attempts")
    app = Starlette(routes=[Route("/metrics", metrics_endpoint(daemon.metrics, daemon.store))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.text
        assert (await client.post("/metrics")).status_code == 405

    assert sample(text, "fax_gateway_smtp_transactions_total", reply_class="2xx") == 2
    assert sample(text, "fax_gateway_smtp_transactions_total", reply_class="5xx") == 1
    assert sample(text, "fax_gateway_attempts_total", outcome="completed") == 1
    assert sample(text, "fax_gateway_attempts_total", outcome="busy") == 1
    assert sample(text, "fax_gateway_attempts_total", outcome="line") == 0
    assert sample(text, "fax_gateway_renders_total", result="ok") == 2
    assert sample(text, "fax_gateway_render_seconds_count") == 2
    assert sample(text, "fax_gateway_line_seconds_count") == 2
    assert sample(text, "fax_gateway_line_seconds_sum") > 0
    assert sample(text, "fax_gateway_faxes", direction="outbound", status="completed") == 1
    assert sample(text, "fax_gateway_faxes", direction="outbound", status="pending") == 1
    assert sample(text, "fax_gateway_faxes", direction="inbound", status="completed") == 0
    assert sample(text, "fax_gateway_queue_depth") == 0  # the busy retry is not due yet
    assert sample(text, "fax_gateway_oldest_pending_age_seconds") >= 0
    assert sample(text, "fax_gateway_notification_backlog") == 0
    assert "process_resident_memory_bytes" in text
    [done] = [f for f in await daemon.store.recent_faxes(None, 5) if f.to_number.endswith("100")]
    assert done.status is FaxStatus.COMPLETED


async def test_metrics_app_token_head_and_openmetrics(store):
    metrics = Metrics()
    app = metrics_endpoint(metrics, store, token="s3cret")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        assert (await client.get("/metrics")).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert (await client.get("/metrics", headers=bad)).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        head = await client.head("/metrics", headers=good)
        assert head.status_code == 200 and head.content == b""
        accept = {**good, "Accept": "application/openmetrics-text; version=1.0.0"}
        response = await client.get("/metrics", headers=accept)
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.rstrip().endswith("# EOF")
    await store.close()  # a closed store: the scrape still answers, and counts the error
    await metrics.refresh(store)
    assert metrics.scrape_errors._value.get() == 1
