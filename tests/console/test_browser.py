"""The console in a real browser: sign in, read a refused message's reason in the smtplog,
see a fax's page images load, resend a failed fax."""

from __future__ import annotations

import asyncio

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait
from starlette.applications import Starlette

from gateway.models import FaxStatus
from gateway.store import Store
from tests.api.conftest import seed_fax
from tests.conftest import Clock, SmtpHarness, Tenant
from tests.console.browser import driver, served  # noqa: F401  (driver is a fixture)


def sign_in(browser: webdriver.Chrome, base: str, credential: str) -> None:
    browser.get(f"{base}/console/")
    browser.find_element(By.ID, "credential").send_keys(credential)
    browser.find_element(By.ID, "signin").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/console/folders/outbox"))


async def test_sign_in_read_a_refusal_see_pages_and_resend(
    app: Starlette,
    store: Store,
    tenant: Tenant,
    smtp: SmtpHarness,
    clock: Clock,
    driver: webdriver.Chrome,  # noqa: F811
) -> None:
    refused = await smtp.transact(
        sender="mallory@evil.test",
        rcpts=[f"+14155550100@{tenant.domain}"],
        data="Subject: hi\r\n\r\nhello\r\n",
    )
    assert refused.final[0] == 550
    failed = await seed_fax(store, tenant, FaxStatus.FAILED, pages=1, created=clock() - 30)

    def scenario(base: str) -> str:
        sign_in(driver, base, tenant.auth_token)
        driver.find_element(By.LINK_TEXT, "SMTP log").click()
        row = driver.find_element(By.XPATH, "//tr[td[contains(., 'mallory@evil.test')]]")
        reason = row.find_element(By.CLASS_NAME, "reason").text
        driver.get(f"{base}/console/faxes/{failed.id}")
        image = driver.find_element(By.CSS_SELECTOR, "img.page")
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return arguments[0].complete", image)
        )
        width = driver.execute_script("return arguments[0].naturalWidth", image)
        assert width and int(width) > 0, "the page image did not load"
        driver.find_element(By.ID, "action-resend").click()
        driver.find_element(By.ID, "confirm").click()
        WebDriverWait(driver, 10).until(ec.url_contains("done=resent"))
        return reason

    async with served(app) as base:
        reason = await asyncio.to_thread(scenario, base)
    assert reason == "The sender is not on this faxbox's list of permitted senders."
    resent = [f for f in await store.recent_faxes(tenant.account_id, 10) if f.id != failed.id]
    assert len(resent) == 1 and resent[0].to_number == "+14155550100"
