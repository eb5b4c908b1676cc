"""A real browser for console tests: Debian's chromium and chromedriver driven by Selenium,
headless, against the console served by a real uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette

from gateway.api.server import serve_http
from gateway.config import HttpSettings

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (make deps)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """``app`` on a real socket at 127.0.0.1 (a free port): its base URL."""
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    settings = HttpSettings(host="127.0.0.1", port=0, shutdown_timeout_s=1)
    task = asyncio.create_task(serve_http(app, settings, stop, ready.set_result))
    port = await asyncio.wait_for(ready, 30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def chrome(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # we run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    browser = chrome()
    browser.implicitly_wait(10)
    try:
        yield browser
    finally:
        browser.quit()
