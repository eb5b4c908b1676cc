"""Sign-in with an account's auth token or API key, or the admin token; sign-out.

The credential is checked by the API's own means: the same AuthGuard counts failures per
client address (429 while it waits), and the store's ``account_for_token`` for both kinds of
account secret. The sign-in form, which has no session yet, carries a double-submit token
(a random value in a short-lived cookie and in the form) so that no other site can sign a
browser into an account of its choosing.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import api_of, principal_for
from gateway.api.errors import HttpError
from gateway.console.sessions import COOKIE
from gateway.console.web import PREFIX, console_of, form_of, redirect, render

log = logging.getLogger(__name__)

PRE_COOKIE = "fgw_console_signin"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _form(request: Request, message: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "signin.html", {"signin_token": token, "message": message}, status)
    _set_cookie(request, response, PRE_COOKIE, token, 900)
    return response


async def show_signin(request: Request) -> Response:
    return _form(request)


async def _account_for(request: Request, secret: str) -> str | None:
    """The account ``secret`` signs into ("" for the admin); raises the API's 401/429."""
    principal = await principal_for(request, api_of(request), secret, ("auth_token", "api_key"))
    return principal.account_id or ""


async def sign_in(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=10) as form:
        secret = str(form.get("credential", "")).strip()
        given = str(form.get("signin_token", ""))
    expected = request.cookies.get(PRE_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        return _form(request, "The sign-in form expired. Please try again.", 403)
    try:
        account_id = await _account_for(request, secret)
    except HttpError as exc:
        if exc.status_code == 429:
            return _form(request, f"Too many failed sign-ins. {exc.message}.", 429)
        return _form(request, "That token or API key is not valid.", 401)
    session_id = console_of(request).sessions.start(account_id or None)
    response = redirect("/")
    _set_cookie(request, response, COOKIE, session_id, 12 * 3600)
    response.delete_cookie(PRE_COOKIE, path=PREFIX)
    return response


async def sign_out(request: Request) -> Response:
    await form_of(request)
    console_of(request).sessions.end(request.cookies.get(COOKIE))
    response = redirect("/signin")
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
