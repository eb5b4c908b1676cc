"""Prometheus metrics: counters kept in-process, gauges read from the store at scrape time.

Counters (SMTP transactions, attempts, renders) are fed by explicit calls where the events
happen: the SMTP intake handler's ``on_transaction`` hook, and two decorators the daemon
wraps around the fax transport and the render pool. Gauges that describe the database (faxes
by status, the queue, the notification backlog) are read from it on each scrape, so they are
right after a restart and agree between several gateway nodes on one database.

Everything lives in one ``CollectorRegistry`` per ``Metrics`` (not prometheus-client's global
one), so tests and several daemons in one process do not share counters.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

from gateway.documents.pool import RenderPool
from gateway.documents.render_options import RenderedFax, RenderOptions
from gateway.errors import StorageError
from gateway.models import Direction, FaxStatus, SmtpLogEntry, SourceDocument
from gateway.store import AdminStore
from gateway.transports.base import FaxTransport, OutboundCall, TxResult

log = logging.getLogger(__name__)

REPLY_CLASSES = ("2xx", "4xx", "5xx", "none")
ATTEMPT_OUTCOMES = ("completed", "busy", "no_answer", "line", "permanent", "error")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, open fds
        self.smtp_transactions = Counter(
            "fax_gateway_smtp_transactions",
            "SMTP transactions (MAIL to end of DATA, RSET or disconnect) by final reply class;"
            " 'none' = ended without a reply (RSET, client vanished)",
            ["reply_class"],
            registry=r,
        )
        self.attempts = Counter(
            "fax_gateway_attempts",
            "Transmission attempts by outcome (completed, or the failure class)",
            ["outcome"],
            registry=r,
        )
        self.line_seconds = Histogram(
            "fax_gateway_line_seconds",
            "Line time of a transmission attempt",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200),
            registry=r,
        )
        self.renders = Counter(
            "fax_gateway_renders", "Render jobs by result (ok, failed)", ["result"], registry=r
        )
        self.render_seconds = Histogram(
            "fax_gateway_render_seconds",
            "Wall time to render one fax job's documents to TIFF-F",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.faxes = Gauge(
            "fax_gateway_faxes", "Faxes in the database", ["direction", "status"], registry=r
        )
        self.queue_depth = Gauge(
            "fax_gateway_queue_depth",
            "Outbound jobs due now and waiting for a free line",
            registry=r,
        )
        self.oldest_pending_age = Gauge(
            "fax_gateway_oldest_pending_age_seconds",
            "Age of the oldest outbound fax not yet finished (0 if none)",
            registry=r,
        )
        self.notification_backlog = Gauge(
            "fax_gateway_notification_backlog",
            "Notifications (email, SMS) waiting to be sent or being sent",
            registry=r,
        )
        self.scrape_errors = Counter(
            "fax_gateway_scrape_errors", "Scrapes whose database figures failed", registry=r
        )
        for reply_class in REPLY_CLASSES:  # export zeros, so rate() works from the start
            self.smtp_transactions.labels(reply_class)
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for result in ("ok", "failed"):
            self.renders.labels(result)

    # -- events --------------------------------------------------------------------------------

    def smtp_transaction(self, entry: SmtpLogEntry) -> None:
        """IntakeHandler's ``on_transaction``: once per smtplog row."""
        code = entry.reply_code
        self.smtp_transactions.labels(f"{code // 100}xx" if code else "none").inc()

    def attempt(self, result: TxResult | None) -> None:
        """One transmission attempt ended (None: the transport raised)."""
        if result is None:
            self.attempts.labels("error").inc()
            return
        outcome = "completed" if result.success else str(result.failure_class or "permanent")
        self.attempts.labels(outcome).inc()
        self.line_seconds.observe(max(0.0, result.line_seconds))

    def rendered(self, seconds: float, ok: bool) -> None:
        self.renders.labels("ok" if ok else "failed").inc()
        self.render_seconds.observe(seconds)

    # -- scrape --------------------------------------------------------------------------------

    async def refresh(self, store: AdminStore) -> None:
        """Read the database figures into the gauges (at scrape time)."""
        try:
            stats = await store.queue_stats()
        except StorageError:
            log.exception("metrics: cannot read the queue figures")
            self.scrape_errors.inc()
            return
        for direction in Direction:
            for status in FaxStatus:
                count = stats.faxes.get((direction.value, status.value), 0)
                self.faxes.labels(direction.value, status.value).set(count)
        self.queue_depth.set(stats.due)
        oldest = stats.oldest_unfinished
        self.oldest_pending_age.set(0 if oldest is None else max(0.0, store.clock() - oldest))
        if stats.notification_backlog is not None:
            self.notification_backlog.set(stats.notification_backlog)

    async def exposition(self, store: AdminStore, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its content type (OpenMetrics if the scraper asks for it)."""
        await self.refresh(store)
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


# -- decorators the daemon wraps around the transport and the render pool ----------------------


class MeteredTransport:
    """A ``FaxTransport`` that counts each attempt's outcome and line time."""

    def __init__(self, inner: FaxTransport, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def start(self) -> None:
        await self.inner.start()

    async def send(self, call: OutboundCall) -> TxResult:
        try:
            result = await self.inner.send(call)
        except Exception:
            self.metrics.attempt(None)
            raise
        self.metrics.attempt(result)
        return result

    async def close(self) -> None:
        await self.inner.close()


class MeteredRenderPool(RenderPool):
    """The render pool, timing each job's render."""

    def __init__(self, metrics: Metrics, workers: int | None, per_doc_seconds: float) -> None:
        super().__init__(workers, per_doc_seconds)
        self.metrics = metrics

    async def render(
        self, documents: Sequence[SourceDocument], options: RenderOptions
    ) -> RenderedFax:
        started = time.monotonic()
        try:
            rendered = await super().render(documents, options)
        except Exception:
            self.metrics.rendered(time.monotonic() - started, ok=False)
            raise
        self.metrics.rendered(time.monotonic() - started, ok=True)
        return rendered


# -- GET /metrics --------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class MetricsApp:
    """A plain ASGI app (no web framework here): GET or HEAD gives the exposition.

    With ``token`` set, scrapers must send ``Authorization: Bearer <token>`` (Prometheus's
    ``authorization`` scrape option); the figures are aggregate, but a deployment that
    exposes the HTTP port widely may still not want them public.
    """

    def __init__(self, metrics: Metrics, store: AdminStore, token: str | None = None) -> None:
        self.metrics = metrics
        self.store = store
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", "text/plain", [(b"allow", b"GET")])
            return
        if self.token is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                await _respond(send, 401, b"unauthorized\n", "text/plain")
                return
        body, content_type = await self.metrics.exposition(self.store, headers.get("accept", ""))
        await _respond(send, 200, b"" if scope["method"] == "HEAD" else body, content_type)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type.encode()), *(extra or [])]
    if body:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def metrics_endpoint(metrics: Metrics, store: AdminStore, token: str | None = None) -> MetricsApp:
    """The ASGI app to mount at ``GET /metrics``: ``Route("/metrics", metrics_endpoint(...))``."""
    return MetricsApp(metrics, store, token)
