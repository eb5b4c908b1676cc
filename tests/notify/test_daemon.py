"""The daemon runs the notifier: an email in, a receipt out at the smarthost, with real time."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from gateway.daemon import Daemon
from gateway.store import store_for
from tests.builders import make_email, pdf_bytes
from tests.conftest import make_tenant
from tests.notify.support import Collector, notify_settings


async def test_the_daemon_delivers_the_receipt(tmp_path: Path, collector: Collector) -> None:
    settings = notify_settings(tmp_path, collector.port)
    setup = store_for(settings.storage)
    await setup.open()
    await make_tenant(setup)
    await setup.close()

    daemon = Daemon(settings, announce=lambda line: None)
    await daemon.start()
    try:
        msg = make_email(attachments=[(pdf_bytes(1), "application/pdf", "one.pdf")])

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=30) as client:
                client.send_message(msg)

        await asyncio.to_thread(send)
        async with asyncio.timeout(30):
            while len(collector.received) < 3:  # sender, owner, notify list
                await asyncio.sleep(0.02)
    finally:
        await daemon.stop()
    assert sorted(r.rcpt_tos[0] for r in collector.received) == [
        "alice@example.com",
        "ops@acme.test",
        "owner@acme.test",
    ]
