"""Who is calling and for which account: tokens, the admin token, and the per-request ``Call``.

Account tokens see only their own account; a path naming another account answers 404 exactly as
a nonexistent one does, so nobody learns which ids exist. The admin token (config) sees every
account.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.cursor import CursorSigner
from gateway.api.errors import HttpError, too_many_failures, unauthorized
from gateway.config import Settings
from gateway.documents.office import OfficeConverter
from gateway.errors import NotFoundError
from gateway.guard import AuthGuard
from gateway.store import Store

log = logging.getLogger(__name__)

# Our tokens are 43 characters; anything much longer is not one, and is not worth hashing.
MAX_TOKEN_CHARS = 512


@dataclass
class Api:
    """What every endpoint needs, open and ready (the daemon owns their lifetimes)."""

    store: Store
    settings: Settings
    guard: AuthGuard  # failed authentications per client address, across every route
    clock: Callable[[], float] = time.time
    cursors: CursorSigner = field(default_factory=CursorSigner)
    on_created: Callable[[], None] = lambda: None
    office: OfficeConverter | None = None  # None: office uploads are refused (no LibreOffice)


@dataclass(frozen=True)
class Principal:
    account_id: str | None  # None: the admin
    token: str

    @property
    def is_admin(self) -> bool:
        return self.account_id is None


@dataclass(frozen=True)
class Call:
    """One authorized request about one account."""

    request: Request
    api: Api
    principal: Principal
    account_id: str

    @property
    def store(self) -> Store:
        return self.api.store


def api_of(request: Request) -> Api:
    api = request.app.state.api
    assert isinstance(api, Api)
    return api


def token_of(request: Request) -> str | None:
    """``X-Auth-Token``, else ``Authorization: Bearer``, else ``?auth_token=`` (download links)."""
    token = request.headers.get("x-auth-token")
    if not token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    if not token:
        token = request.query_params.get("auth_token")
    return token.strip() if token else None


def client_address(request: Request) -> str | None:
    """The peer the server sees (no X-Forwarded-For: any client could write one)."""
    return request.client.host if request.client else None


def check_not_guessing(request: Request, api: Api) -> None:
    """429 for an address that failed too often, before its credential is even looked at: a
    right guess must get the same answer as a wrong one."""
    wait = api.guard.retry_after(client_address(request))
    if wait is not None:
        raise too_many_failures(wait)


def failed_credential(request: Request, api: Api) -> HttpError:
    """Count a wrong credential against the caller's address; the 401 to raise."""
    address = client_address(request)
    if api.guard.failed(address):
        log.warning("http: too many failed authentications from %s; refusing it for now", address)
    return unauthorized()


async def principal_for(
    request: Request, api: Api, secret: str, kinds: tuple[str, ...] = ("auth_token",)
) -> Principal:
    """Who ``secret`` is: the admin, or the account of a credential of one of ``kinds``;
    raises the 401 (counted against the caller's address) or the 429 of a guesser."""
    check_not_guessing(request, api)
    if not secret or len(secret) > MAX_TOKEN_CHARS:
        raise failed_credential(request, api)
    admin = api.settings.http.admin_token
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return Principal(None, secret)
    for kind in kinds:
        account = await api.store.account_for_token(secret, kind=kind)
        if account is not None:
            return Principal(account.id, secret)
    raise failed_credential(request, api)


async def authenticate(request: Request, api: Api) -> Principal:
    token = token_of(request)
    if not token:
        raise unauthorized()  # no credential, no guess: a plain link opened without a token
    principal = await principal_for(request, api, token)
    request.scope.setdefault("state", {})["auth_token"] = token
    return principal


async def authorize(api: Api, principal: Principal, account_id: str) -> None:
    """404 for an account the caller may not see, the same answer as for one that is not."""
    if principal.is_admin:
        await api.store.get_account(account_id)
    elif principal.account_id != account_id:
        raise NotFoundError(f"account {account_id} not found")


Handler = Callable[[Call], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def account_endpoint(handler: Handler) -> Endpoint:
    """Authenticate, check the path's account, then run ``handler``."""

    async def endpoint(request: Request) -> Response:
        api = api_of(request)
        principal = await authenticate(request, api)
        account_id = str(request.path_params["account_id"])
        await authorize(api, principal, account_id)
        return await handler(Call(request, api, principal, account_id))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def admin_endpoint(handler: Handler) -> Endpoint:
    """Admin-only routes (rows that belong to no account): 403 for account tokens."""

    async def endpoint(request: Request) -> Response:
        api = api_of(request)
        principal = await authenticate(request, api)
        if not principal.is_admin:
            raise HttpError(403, data={"message": "this route needs the admin token"})
        return await handler(Call(request, api, principal, ""))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
