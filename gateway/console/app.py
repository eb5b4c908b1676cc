"""The console's ASGI app, mounted at ``/console`` by ``gateway.api.app``: routes, the
security headers every answer carries, and errors shown as pages."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.context import Api
from gateway.api.errors import HttpError
from gateway.console import fax_lists, fax_page, faxboxes, health_page, signin, smtplog
from gateway.console.sessions import Sessions
from gateway.console.thumbnails import Thumbnails
from gateway.console.web import Console, Refused, SignInNeeded, redirect, render
from gateway.health import Health

CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """CSP, no framing, no sniffing; ``no-store`` unless the answer chose its own caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.extend(h for h in _HEADERS if h[0] not in names)
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def console_home(request: Request) -> Response:
    """``/console/``: the outbox (which sends a browser without a session to sign in)."""
    return redirect("/folders/outbox")


async def _sign_in_needed(request: Request, exc: Exception) -> Response:
    return redirect("/signin")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return render(request, "error.html", {"message": exc.message}, exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """An API helper's refusal (a bad start key, a 429) shown as a page with its status."""
    assert isinstance(exc, HttpError)
    return render(request, "error.html", {"message": exc.message}, exc.status_code)


async def _not_found(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {"message": "There is no such page."}, 404)


def create_console(api: Api, health: Health, sessions: Sessions | None = None) -> Starlette:
    """The console over the API's open collaborators (store, settings, guard, cursors)."""
    routes = [
        Route("/", console_home),
        Route("/signin", signin.show_signin, methods=["GET"]),
        Route("/signin", signin.sign_in, methods=["POST"]),
        Route("/signout", signin.sign_out, methods=["POST"]),
        Route("/folders/{folder}", fax_lists.folder_page),
        Route("/faxes/{fax_id}", fax_page.fax_page),
        Route("/faxes/{fax_id}/pages/{page:int}.png", fax_page.page_image),
        Route("/faxes/{fax_id}/download/{kind}", fax_page.download),
        Route("/faxes/{fax_id}/{action}", fax_page.confirm, methods=["GET"]),
        Route("/faxes/{fax_id}/{action}", fax_page.act, methods=["POST"]),
        Route("/smtplog", smtplog.smtplog_page),
        Route("/smtplog/{entry_id}", smtplog.smtplog_entry),
        Route("/faxboxes", faxboxes.faxboxes_page),
        Route("/faxboxes/{faxbox_id}", faxboxes.edit_page, methods=["GET"]),
        Route("/faxboxes/{faxbox_id}", faxboxes.save, methods=["POST"]),
        Route("/health", health_page.health_page),
        Mount("/static", StaticFiles(packages=[("gateway.console", "static")]), name="static"),
    ]
    handlers: dict[Any, Any] = {
        SignInNeeded: _sign_in_needed,
        Refused: _refused,
        HttpError: _http_error,
        404: _not_found,
    }
    app = Starlette(
        routes=routes, middleware=[Middleware(SecurityHeaders)], exception_handlers=handlers
    )
    app.state.console = Console(api, health, sessions or Sessions(), Thumbnails())
    app.state.api = api  # the API's own helpers (guard, credential checks) look for it here
    return app
