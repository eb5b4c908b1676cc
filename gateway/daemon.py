"""The composition root: open the store, start every service in one loop, stop them in order.

Stop order on SIGTERM/SIGINT: stop accepting mail (close the SMTP listener, let transactions
being logged finish), let running renders and transmissions finish up to the drain timeout
and hand back the rest, then stop the notifier (it keeps delivering receipts while
transmissions drain; deliveries under way finish), then the render pool (only once nothing
renders: a pool shut down under a render would look like the document's fault), then close
the store. The render pool's processes ignore stop signals, so a SIGTERM sent to the whole
process group stops the daemon in this order too.

In detail (gateway/smtp/server.py ``shutdown``): STOPPING=1 to systemd; the SMTP listener
closes; messages being received (in DATA) finish up to ``smtp.drain_timeout_s`` and get their
250; other sessions get 421. SMTP drains while the worker drains (concurrently), so the stop
takes at most the longer of the two drain times. SIGHUP reloads what is safe to change
(gateway.reload).

Health (gateway.health): the daemon registers a check per part (store reader and writer, render
pool, the render, worker and notifier loops); ``GET /healthz`` answers from them, and every
``HEALTH_INTERVAL_S`` (or half of systemd's ``WatchdogSec=``) they run here: the watchdog is
pinged only while they pass.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import housekeeping, logs, reload, sdnotify
from gateway.api.app import create_app
from gateway.api.server import serve_http
from gateway.bootstrap import ensure_demo, send_demo_fax
from gateway.config import Settings
from gateway.documents.office_process import office_converter
from gateway.fetch import fetch_document
from gateway.health import Health, for_store, loop_alive, render_pool
from gateway.inbound import FaxboxInbound
from gateway.metrics import MeteredRenderPool, MeteredTransport, Metrics, metrics_endpoint
from gateway.notify import Notifier
from gateway.pipeline import RenderStage
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import store_for
from gateway.transports.factory import build_transport
from gateway.worker import Worker, lease_owner

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 10.0  # how often the health checks run without a systemd watchdog


@dataclass
class Daemon:
    settings: Settings
    announce: Callable[[str], None] = print
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    smtp_port: int = 0
    http_port: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    config_path: Path | None = None  # re-read on SIGHUP
    metrics: Metrics = field(default_factory=Metrics)
    reloads: set[asyncio.Task[bool]] = field(default_factory=set)
    health_clock: Callable[[], float] = time.monotonic  # how long a health problem has lasted

    async def _send_demo_fax(self, domain: str) -> None:
        """First start of a dev gateway: a test fax through real SMTP intake (bootstrap)."""
        try:
            await send_demo_fax(self.settings.smtp.host, self.smtp_port, domain)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("bootstrap: the test fax could not be mailed: %s", exc)

    async def start(self) -> None:
        s = self.settings
        self.store = store_for(s.storage)
        # Before anything opens: a broken template or CA file stops the start with a ConfigError.
        self.notifier = Notifier(self.store, s.notifications)
        # Also before: [office] enabled = true without LibreOffice is a ConfigError. Probing
        # for network namespaces runs a process: not on the loop.
        office = await asyncio.to_thread(office_converter, s.office, s.render.workers)
        await self.store.open()
        demo = await ensure_demo(self.store, s)
        self.pool = MeteredRenderPool(
            self.metrics, s.render.workers or None, s.render.document_timeout_s
        )
        owner = lease_owner()
        self.inbound = FaxboxInbound(
            self.store,
            self.pool.to_pdf,
            owner,
            s.worker.lease_s,
            on_finished=lambda _fax_id: self.notifier.wake.set(),
        )
        self.transport = build_transport(s.transport, self.inbound)
        self.worker = Worker(
            self.store,
            MeteredTransport(self.transport, self.metrics),
            s.worker,
            owner,
            on_finished=lambda _fax_id: self.notifier.wake.set(),
        )
        await self.transport.start()
        self.render = RenderStage(
            self.store,
            self.pool,
            s,
            fetcher=functools.partial(fetch_document, settings=s.fetch),
            on_ready=self.worker.wake.set,
        )
        self.work_stop = asyncio.Event()
        self.tasks = [
            asyncio.create_task(self.render.run(self.work_stop), name="render"),
            asyncio.create_task(self.worker.run(self.work_stop), name="worker"),
            asyncio.create_task(
                housekeeping.run(self.store, lambda: self.settings.retention, self.work_stop),
                name="purge",
            ),
        ]
        self.notify_stop = asyncio.Event()
        self.notifier_task = asyncio.create_task(
            self.notifier.run(self.notify_stop), name="notifier"
        )
        self.health = self._health_checks()
        self.smtp = SmtpServer(
            IntakeHandler(
                self.store,
                s.smtp,
                on_accepted=self.render.wake.set,
                on_transaction=self.metrics.smtp_transaction,
                office=office,
                fonts=s.render.fonts,
            ),
            s.smtp,
        )
        self.smtp_port = await self.smtp.start()
        log.info("smtp listening on %s:%d", s.smtp.host, self.smtp_port)
        self.http_stop = asyncio.Event()
        http_ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        app = create_app(
            self.store,
            s,
            on_created=self.render.wake.set,
            office=office,
            metrics_app=metrics_endpoint(self.metrics, self.store),
            health=self.health,
        )
        self.http_task = asyncio.create_task(
            serve_http(app, s.http, self.http_stop, on_ready=http_ready.set_result), name="http"
        )
        first: set[asyncio.Future[Any]] = {self.http_task, http_ready}
        done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if self.http_task in done:
            await self.http_task  # it failed to start (port in use): raise its ConfigError
        self.http_port = http_ready.result()
        log.info("http listening on %s:%d", s.http.host, self.http_port)
        if demo is not None:
            self.announce(
                f"demo faxbox: send mail to <number>@{demo.smtp_domain} "
                f"(account {demo.account_id}); demo auth token: {demo.auth_token}"
            )
            if demo.created and s.bootstrap.demo_fax:
                await self._send_demo_fax(demo.smtp_domain)
        listeners = (
            f"smtp {s.smtp.host}:{self.smtp_port}, http http://{s.http.host}:{self.http_port}"
        )
        self.announce(f"fax-gateway ready: {listeners}")
        # Last, once every listener (SMTP, HTTP) accepts: systemd starts dependents now.
        sdnotify.ready(listeners)
        self.listeners = listeners
        self.watch_task = asyncio.create_task(self._watch_health(), name="health")

    def _health_checks(self) -> Health:
        health = for_store(self.store, self.health_clock)
        health.add("render_pool", render_pool(self.pool))
        # A loop sleeps at most 5 poll intervals between rounds when idle.
        stale = max(30.0, self.settings.worker.poll_s * 5 * 3)
        clock = self.health_clock
        render, worker = self.render, self.worker
        health.add("render", loop_alive(self.tasks[0], lambda: render.heartbeat, stale, clock))
        health.add("worker", loop_alive(self.tasks[1], lambda: worker.heartbeat, stale, clock))
        health.add("notifier", loop_alive(self.notifier_task))
        return health

    async def _watch_health(self) -> None:
        """Ping systemd's watchdog while every health check passes; when one fails, say which
        (the log, ``systemctl status``) and ping no more, so that systemd restarts a daemon
        that stays broken. Running the checks regularly also times lasting problems."""
        interval = sdnotify.watchdog_interval() or HEALTH_INTERVAL_S
        unhealthy = ""
        while True:
            if self.stopping.is_set():
                sdnotify.watchdog()  # a drain is no hang: the stop has a time limit of its own
            else:
                report = await self.health.check()
                if report.healthy:
                    sdnotify.watchdog()
                    if unhealthy:
                        log.warning("healthy again")
                        sdnotify.status(self.listeners)
                    unhealthy = ""
                elif report.summary != unhealthy:
                    unhealthy = report.summary
                    parts = ", ".join(f"{name}: {report.checks[name]}" for name in report.failing)
                    log.error("%s (%s)", report.summary, parts)
                    sdnotify.status(f"{report.summary} ({parts})")
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        self.stopping.set()  # the health watch keeps the watchdog fed through the drain
        sdnotify.stopping()
        self.work_stop.set()  # claim nothing new; running transmissions may finish (drain)
        self.http_stop.set()  # requests in flight finish (http.shutdown_timeout_s)
        await asyncio.gather(
            self.smtp.shutdown(self.settings.smtp.drain_timeout_s),
            self.http_task,
            *self.tasks,
            return_exceptions=True,
        )
        self.notify_stop.set()
        await asyncio.gather(self.notifier_task, return_exceptions=True)
        await self.transport.close()
        await self.inbound.close()
        # Every render has finished or been handed back by now: nothing to wait for.
        await self.pool.close(grace_seconds=0)
        await self.store.close()
        self.watch_task.cancel()
        await asyncio.gather(self.watch_task, return_exceptions=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        try:
            await self.start()
        except BaseException:
            await self._abandon_start()
            raise
        try:
            await self.stopping.wait()
        finally:
            log.info("stopping")
            await self.stop()

    async def _abandon_start(self) -> None:
        """A start that failed half way (a SIP port in use, a broken engine) closes what it had
        opened, so that the process exits with the error instead of hanging on the render
        pool's processes and the store's threads."""
        for part in ("transport", "inbound", "pool", "store"):
            opened = getattr(self, part, None)
            if opened is None:
                continue
            try:
                await opened.close()
            except Exception:  # the start's own error is the one to report
                log.exception("closing %s after a failed start", part)

    def reload(self, settings: Settings) -> None:
        """SIGHUP (gateway.reload): apply the reloadable settings to every part. A certificate
        that does not load raises ConfigError and changes nothing."""
        self.smtp.apply(settings.smtp)  # first: the only part that can refuse
        self.settings = settings
        logs.set_level(settings.logging.level)
        self.render.settings = settings  # max_pages, max_image_pixels of render options

    def _reload_soon(self) -> None:
        # A signal handler must not block: reload in a task, referenced until it is done.
        if not hasattr(self, "smtp"):
            log.warning("reload: ignored, the daemon is still starting")
            return
        task = asyncio.get_running_loop().create_task(reload.reload(self), name="reload")
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)


def serve(settings: Settings, config_path: Path | None = None) -> None:
    asyncio.run(Daemon(settings, config_path=config_path).run())
