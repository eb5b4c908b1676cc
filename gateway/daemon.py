"""The composition root: open the store, start every service in one loop, stop them in order.

Stop order on SIGTERM/SIGINT: stop accepting mail (close the SMTP listener, let transactions
being logged finish), stop rendering, let running transmissions finish up to the drain
timeout and hand back the rest, then close the store.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.bootstrap import ensure_demo
from gateway.config import Settings
from gateway.documents.pool import RenderPool
from gateway.pipeline import RenderStage
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import Store
from gateway.transports.loopback import LoopbackTransport
from gateway.worker import LocalNumbers, Worker

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    settings: Settings
    announce: Callable[[str], None] = print
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    smtp_port: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        s = self.settings
        self.store = Store(s.storage.path, s.storage.synchronous)
        await self.store.open()
        demo = await ensure_demo(self.store, s)
        self.pool = RenderPool(s.render.workers or None, s.render.document_timeout_s)
        local_numbers = LocalNumbers()
        self.transport = LoopbackTransport(s.transport.loopback.remotes, local_numbers)
        self.worker = Worker(self.store, self.transport, s.worker, self.pool.to_pdf, local_numbers)
        self.render = RenderStage(self.store, self.pool, s, on_ready=self.worker.wake.set)
        self.work_stop = asyncio.Event()
        self.tasks = [
            asyncio.create_task(self.render.run(self.work_stop), name="render"),
            asyncio.create_task(self.worker.run(self.work_stop), name="worker"),
        ]
        self.smtp = SmtpServer(
            IntakeHandler(self.store, s.smtp, on_accepted=self.render.wake.set), s.smtp
        )
        self.smtp_port = await self.smtp.start()
        log.info("smtp listening on %s:%d", s.smtp.host, self.smtp_port)
        if demo is not None:
            self.announce(
                f"demo faxbox: send mail to <number>@{demo.smtp_domain} "
                f"(account {demo.account_id}); demo auth token: {demo.auth_token}"
            )
        self.announce(f"fax-gateway ready: smtp {s.smtp.host}:{self.smtp_port}")

    async def stop(self) -> None:
        await self.smtp.close()
        self.work_stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.transport.close()
        await self.pool.close()
        await self.store.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.start()
        try:
            await self.stopping.wait()
        finally:
            log.info("stopping")
            await self.stop()


def serve(settings: Settings) -> None:
    asyncio.run(Daemon(settings).run())
