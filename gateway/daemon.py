"""The composition root: open the store, start every service in one loop, stop them in order."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.bootstrap import ensure_demo
from gateway.config import Settings
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import Store

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    settings: Settings
    announce: Callable[[str], None] = print
    store: Store = field(init=False)
    smtp: SmtpServer = field(init=False)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    smtp_port: int = 0

    async def start(self) -> None:
        s = self.settings
        self.store = Store(s.storage.path, s.storage.synchronous)
        await self.store.open()
        demo = await ensure_demo(self.store, s)
        self.smtp = SmtpServer(IntakeHandler(self.store, s.smtp), s.smtp)
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
