"""What every console page needs: the open collaborators, templates, the viewer's session and
the CSRF check."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.context import Api
from gateway.console.sessions import COOKIE, Session, Sessions
from gateway.console.thumbnails import Thumbnails
from gateway.health import Health

PREFIX = "/console"

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.console", "templates"),
    autoescape=True,  # every value is escaped unless a template says otherwise (none does)
    undefined=jinja2.StrictUndefined,
)


def _utc(unix: float | None) -> str:
    if unix is None:
        return ""
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(unix: float | None) -> str:
    if unix is None:
        return ""
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds")


_templates.filters["utc"] = _utc
_templates.filters["iso"] = _iso


@dataclass
class Console:
    api: Api
    health: Health
    sessions: Sessions
    thumbnails: Thumbnails


class SignInNeeded(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""


class Refused(Exception):
    """A request the console will not carry out, with the status and the words to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def console_of(request: Request) -> Console:
    console = request.app.state.console
    assert isinstance(console, Console)
    return console


def session_of(request: Request) -> Session:
    session = console_of(request).sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise SignInNeeded
    return session


async def form_of(request: Request) -> dict[str, str]:
    """The POSTed form (small: the console's forms hold a few fields), after its CSRF check."""
    session = session_of(request)
    async with request.form(max_files=0, max_fields=200) as form:
        fields = {key: str(value) for key, value in form.items()}
    if not session.csrf_ok(fields.get("csrf")):
        raise Refused(403, "This form has expired or did not come from this console. Reload it.")
    return fields


def account_of(request: Request, session: Session) -> str | None:
    """The account a page is about: the viewer's own, or for the admin the one named by
    ``?account=`` (None: not chosen yet)."""
    if session.account_id is not None:
        return session.account_id
    chosen = request.query_params.get("account", "").strip()
    return chosen[:64] or None


def render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    session = console_of(request).sessions.get(request.cookies.get(COOKIE))
    html = _templates.get_template(template).render(
        prefix=PREFIX, session=session, path=request.url.path, **context
    )
    return HTMLResponse(html, status)


def redirect(path: str) -> Response:
    return RedirectResponse(PREFIX + path, status_code=303)
