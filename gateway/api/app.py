"""The ASGI application: routes, middleware and the one exception handler.

``create_app`` takes dependencies that are already open (the daemon owns their lifetimes), so
there is no lifespan; tests run it over ``httpx.ASGITransport`` or a real uvicorn socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from gateway.api import attachments, faxboxes, faxes, kazoo_schema, lists
from gateway.api.context import (
    Api,
    Endpoint,
    account_endpoint,
    admin_endpoint,
    api_of,
    authenticate,
    check_not_guessing,
    failed_credential,
)
from gateway.api.cursor import CursorSigner
from gateway.api.errors import HttpError, parse_model, response_for
from gateway.api.openapi import build_openapi
from gateway.api.responses import JSON, RequestContext, dumps, envelope
from gateway.api.schemas import ApiAuthIn
from gateway.api.uploads import read_json_object
from gateway.config import Settings
from gateway.console import console_home, create_console
from gateway.documents.office import OfficeConverter
from gateway.errors import GatewayError
from gateway.guard import AuthGuard
from gateway.health import Health, for_store
from gateway.store import Store


class FolderConvertor(Convertor[str]):
    """``{folder:folder}``: only the four folder names route; any other is a plain 404."""

    regex = "outgoing|outbox|incoming|inbox"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("folder", FolderConvertor())


def _route(path: str, **handlers: Endpoint) -> Route:
    """One route, several methods: 405 then names exactly the methods the path has."""
    table = {method.upper(): handler for method, handler in handlers.items()}

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await table[method](request)

    return Route(path, dispatch, methods=list(table))


async def _healthz(request: Request) -> Response:
    """Every part's state (gateway.health); 503 naming the failing parts when any fails, so
    that load balancers and monitors can act."""
    health: Health = request.app.state.health
    report = await health.check()
    if not report.healthy:
        raise HttpError(503, report.summary, report.checks)
    return Response(dumps({"status": "ok", "data": report.checks}), media_type=JSON)


async def _api_auth(request: Request) -> Response:
    """``PUT /v2/api_auth`` ``{"data": {"api_key": K}}``: a fresh auth token for K's account."""
    api = api_of(request)
    check_not_guessing(request, api)
    body = parse_model(ApiAuthIn, await read_json_object(request, api.settings.http.max_body_bytes))
    account = await api.store.account_for_token(body.data.api_key, kind="api_key")
    if account is None:
        raise failed_credential(request, api)
    http = api.settings.http
    token = await api.store.issue_auth_token(
        account.id, ttl_s=http.token_ttl_s, keep=http.max_tokens_per_account
    )
    request.scope.setdefault("state", {})["auth_token"] = token
    return envelope(request, {"account_id": account.id}, 201)


async def _whoami(request: Request) -> Response:
    """``GET /v2/api_auth``: which account a token belongs to (none for the admin)."""
    principal = await authenticate(request, api_of(request))
    return envelope(request, {"account_id": principal.account_id, "admin": principal.is_admin})


def _routes(openapi: bytes) -> list[Route]:
    a = "/v2/accounts/{account_id}"
    fax = a + "/faxes/{folder:folder}/{fax_id}"
    acc = account_endpoint

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type=JSON)

    return [
        _route("/healthz", get=_healthz),
        _route("/v2/openapi.json", get=openapi_json),
        _route("/v2/api_auth", put=_api_auth, get=_whoami),
        # Public, as in Kazoo: a schema is made from code and holds no account data.
        _route("/v2/schemas", get=kazoo_schema.list_schemas),
        _route("/v2/schemas/{name}", get=kazoo_schema.get_schema),
        _route(a + "/faxes", put=acc(faxes.create_fax)),
        _route(a + "/faxes/outgoing", put=acc(faxes.create_fax), get=acc(lists.list_folder)),
        _route(a + "/faxes/smtplog", get=acc(lists.list_smtplog)),
        _route(a + "/faxes/smtplog/{log_id}", get=acc(lists.get_smtplog)),
        _route(a + "/faxes/{folder:folder}", get=acc(lists.list_folder)),
        _route(
            fax,
            get=acc(faxes.get_fax),
            put=acc(faxes.act_on_fax),
            delete=acc(faxes.delete_fax),
        ),
        _route(
            fax + "/attachment",
            get=acc(attachments.get_attachment),
            delete=acc(attachments.delete_attachment),
        ),
        _route(a + "/faxboxes", get=acc(faxboxes.list_faxboxes), put=acc(faxboxes.create_faxbox)),
        _route(
            a + "/faxboxes/{faxbox_id}",
            get=acc(faxboxes.get_faxbox),
            post=acc(faxboxes.replace_faxbox),
            patch=acc(faxboxes.patch_faxbox),
            delete=acc(faxboxes.delete_faxbox),
        ),
        _route("/v2/faxes/smtplog", get=admin_endpoint(lists.list_smtplog)),
        _route("/v2/faxes/smtplog/{log_id}", get=admin_endpoint(lists.get_smtplog)),
    ]


async def _handle(request: Request, exc: Exception) -> Response:
    return response_for(request, exc)


def create_app(
    store: Store,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    *,
    on_created: Callable[[], None] | None = None,
    metrics_app: ASGIApp | None = None,
    health: Health | None = None,
    office: OfficeConverter | None = None,
) -> Starlette:
    """The API over an open ``store``; ``on_created()`` is called after each new job commits
    (the daemon passes the render stage's wake-up); ``metrics_app`` serves ``GET /metrics``;
    ``health`` answers ``GET /healthz`` (by default, the store's checks alone); ``office``
    converts uploaded office documents (None: they are refused)."""
    api = Api(
        store=store,
        settings=settings,
        clock=clock,
        cursors=CursorSigner(settings.http.cursor_secret),
        on_created=on_created or (lambda: None),
        office=office,
        guard=AuthGuard(
            settings.http.auth_failure_limit, settings.http.auth_failure_window_s, clock=clock
        ),
    )
    origins = [o.strip() for o in settings.http.cors_allow_origin.split(",") if o.strip()]
    handlers: dict[Any, Any] = {
        HttpError: _handle,
        GatewayError: _handle,
        HTTPException: _handle,
        Exception: _handle,
    }
    routes: list[Route | Mount] = list(_routes(dumps(build_openapi())))
    if metrics_app is not None:
        routes.append(Route("/metrics", metrics_app, methods=["GET", "HEAD"]))
    health = health or for_store(store)
    # RequestContext trims "/console/" to "/console", which the mount alone would bounce back.
    routes.append(Route("/console", console_home))
    routes.append(Mount("/console", create_console(api, health)))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContext),
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=["x-auth-token", "content-type", "authorization", "x-request-id"],
                expose_headers=["content-disposition", "location", "x-request-id"],
                max_age=600,
            ),
        ],
        exception_handlers=handlers,
    )
    app.state.api = api
    app.state.health = health
    return app
