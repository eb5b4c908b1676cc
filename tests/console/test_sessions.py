"""Signing in and out of the console: credentials, cookies, CSRF, guessing, headers."""

from __future__ import annotations

import httpx

from gateway.store import Store
from tests.api.conftest import ADMIN
from tests.conftest import Tenant
from tests.console.conftest import CONSOLE, csrf_of, sign_in


async def test_an_auth_token_signs_in_with_a_strict_httponly_cookie(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    answer = await sign_in(browser, tenant.auth_token)
    assert answer.status_code == 303
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "fgw_console=" in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https would add it
    page = await browser.get(f"{CONSOLE}/folders/outbox")
    assert page.status_code == 200
    assert f"account {tenant.account_id}" in page.text


async def test_an_api_key_signs_in_too(browser: httpx.AsyncClient, store: Store) -> None:
    account, _token, api_key = await store.create_account("keyed")
    assert (await sign_in(browser, api_key)).status_code == 303
    page = await browser.get(f"{CONSOLE}/faxboxes")
    assert f"account {account.id}" in page.text


async def test_the_admin_token_signs_in_for_every_account(browser: httpx.AsyncClient) -> None:
    await sign_in(browser, ADMIN)
    page = await browser.get(f"{CONSOLE}/health")
    assert page.status_code == 200
    assert "admin (all accounts)" in page.text and "Queue depth" in page.text


async def test_a_wrong_credential_is_refused_and_guessing_is_slowed(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    for _ in range(3):
        answer = await sign_in(browser, "not-a-token")
        assert answer.status_code == 401
        assert "not valid" in answer.text
    # The limit is reached: even the right token now waits, as on the API.
    answer = await sign_in(browser, tenant.auth_token)
    assert answer.status_code == 429
    assert "Too many failed sign-ins" in answer.text


async def test_a_sign_in_post_without_the_forms_token_is_refused(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    answer = await browser.post(
        f"{CONSOLE}/signin", data={"credential": tenant.auth_token, "signin_token": "forged"}
    )
    assert answer.status_code == 403
    assert (await browser.get(f"{CONSOLE}/folders/outbox")).status_code == 303


async def test_pages_without_a_session_send_the_browser_to_sign_in(
    browser: httpx.AsyncClient,
) -> None:
    answer = await browser.get(f"{CONSOLE}/smtplog")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/signin"


async def test_sign_out_without_the_csrf_token_is_refused_and_the_session_lives(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    await sign_in(browser, tenant.auth_token)
    answer = await browser.post(f"{CONSOLE}/signout", data={"csrf": "wrong"})
    assert answer.status_code == 403
    assert (await browser.get(f"{CONSOLE}/smtplog")).status_code == 200


async def test_after_sign_out_the_old_cookie_opens_nothing(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    await sign_in(browser, tenant.auth_token)
    session_cookie = browser.cookies["fgw_console"]
    csrf = await csrf_of(browser)
    answer = await browser.post(f"{CONSOLE}/signout", data={"csrf": csrf})
    assert answer.status_code == 303
    # A copy of the cookie kept by an attacker (or the browser) is worth nothing now.
    browser.cookies.set("fgw_console", session_cookie, domain="gw.test", path="/console")
    assert (await browser.get(f"{CONSOLE}/smtplog")).status_code == 303


async def test_every_page_carries_the_security_headers(
    browser: httpx.AsyncClient, tenant: Tenant
) -> None:
    await sign_in(browser, tenant.auth_token)
    for path in ("/signin", "/folders/outbox", "/smtplog", "/faxboxes"):
        answer = await browser.get(CONSOLE + path)
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"


async def test_the_console_address_with_or_without_its_slash_leads_to_sign_in(
    browser: httpx.AsyncClient,
) -> None:
    for path in ("/console/", "/console"):
        answer = await browser.get(path, follow_redirects=True)
        assert answer.status_code == 200
        assert answer.url.path == "/console/signin"


async def test_over_https_the_cookie_is_secure(app: object, tenant: Tenant) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://gw.test") as client:
        answer = await sign_in(client, tenant.auth_token)
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "fgw_console=" in v
    )
    assert "Secure" in cookie


async def test_the_health_page_is_the_admins(browser: httpx.AsyncClient, tenant: Tenant) -> None:
    await sign_in(browser, tenant.auth_token)
    assert (await browser.get(f"{CONSOLE}/health")).status_code == 403
