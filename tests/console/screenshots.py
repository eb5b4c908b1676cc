"""Screenshots of the console's main pages for docs/console.md (not a test; not in make test).

    .venv/bin/python -m tests.console.screenshots        # writes docs/console/*.png

A fresh store in a temporary folder gets a demo account with an accepted fax, a failed one and
a refused SMTP transaction (through a real SMTP server); the console is served by uvicorn on a
loopback port and photographed by headless chromium.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from gateway.api.app import create_app
from gateway.models import FaxStatus
from gateway.store import SqliteStore
from gateway.store.database import Database
from tests.api.conftest import ADMIN, seed_fax
from tests.conftest import Clock, make_settings, make_tenant, start_smtp
from tests.console.browser import chrome, served
from tests.console.test_browser import sign_in

OUT = Path(__file__).resolve().parents[2] / "docs" / "console"


async def main() -> None:
    folder = Path(tempfile.mkdtemp())
    clock = Clock()
    settings = make_settings(folder, http={"admin_token": ADMIN, "cursor_secret": "shots"})
    store = SqliteStore(Database(settings.storage.path, settings.storage.synchronous), clock)
    await store.open()
    tenant = await make_tenant(store)
    smtp = await start_smtp(store, settings, clock)
    await smtp.transact(
        sender="mallory@evil.test",
        rcpts=[f"+14155550100@{tenant.domain}"],
        data="Subject: invoice\r\n\r\nhello\r\n",
    )
    done = await seed_fax(store, tenant, pages=1, subject="Signed contract", created=clock() - 300)
    await seed_fax(
        store, tenant, FaxStatus.FAILED, pages=1, subject="Order 7", created=clock() - 90
    )
    shots = {
        "outbox": "/console/folders/outbox",
        "fax": f"/console/faxes/{done.id}",
        "smtplog": "/console/smtplog",
        "faxbox": f"/console/faxboxes/{tenant.faxbox.id}",
    }

    def photograph(base: str) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        browser = chrome(1280, 900)
        try:
            browser.get(f"{base}/console/signin")
            browser.save_screenshot(str(OUT / "signin.png"))
            sign_in(browser, base, tenant.auth_token)
            for name, path in shots.items():
                browser.get(base + path)
                browser.save_screenshot(str(OUT / f"{name}.png"))
            browser.delete_all_cookies()
            sign_in(browser, base, ADMIN)
            browser.get(f"{base}/console/health")
            browser.save_screenshot(str(OUT / "health.png"))
        finally:
            browser.quit()

    async with served(create_app(store, settings, clock)) as base:
        await asyncio.to_thread(photograph, base)
    await smtp.server.close()
    await store.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
