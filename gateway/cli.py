"""Command line: ``fax-gateway [--config PATH] COMMAND``; commands that create print JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway import __version__, admin, logs
from gateway.config import Settings, config_path, load_settings
from gateway.errors import ConfigError, GatewayError, InvalidFieldError, NotFoundError
from gateway.models import Faxbox
from gateway.numbers import normalize_api_number
from gateway.routing import validate_rule
from gateway.store import Store, store_for
from gateway.views import fax_summary, faxbox_view, smtplog_summary

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fax-gateway", description="Email-to-fax gateway")
    parser.add_argument(
        "--config", help="TOML config (default $FAX_GATEWAY_CONFIG or config/gateway.toml)"
    )
    parser.add_argument("--version", action="version", version=f"fax-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run SMTP, HTTP and the worker until SIGTERM")
    commands.add_parser("check-config", help="validate the configuration")
    commands.add_parser("migrate", help="apply the store's schema migrations (both backends)")

    accounts = commands.add_parser("accounts", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create = accounts.add_parser("create", help="create an account")
    create.add_argument("--name", required=True)
    create.add_argument("--realm")

    faxboxes = commands.add_parser("faxboxes", help="manage faxboxes").add_subparsers(
        dest="action", required=True
    )
    box = faxboxes.add_parser("create", help="create a faxbox")
    box.add_argument("--account", required=True)
    box.add_argument("--name", required=True)
    box.add_argument("--caller-id")
    box.add_argument("--caller-name")
    box.add_argument("--fax-header")
    box.add_argument("--fax-identity")
    box.add_argument("--permit", action="append", default=[], metavar="PATTERN")
    box.add_argument("--custom-smtp-email-address", metavar="DOMAIN")
    box.add_argument("--retries", type=int, default=3)
    box.add_argument("--notify-email", action="append", default=[], metavar="ADDR")
    box.add_argument("--fax-number")
    box.add_argument("--smtp-password")
    box.add_argument("--owner-email")
    box.add_argument("--region", default=None, help="default region for numbers (e.g. US, DE)")
    box.add_argument("--timezone", default="UTC")
    box.add_argument("--resolution", choices=["fine", "standard"], default="fine")
    box.add_argument("--paper", choices=["letter", "a4"], default=None)
    box.add_argument("--cover-page", action="store_true")
    box.add_argument("--include-body", action="store_true")

    for name in ("smtplog", "faxes"):
        listing = commands.add_parser(name, help=f"list {name} rows, newest first")
        listing.add_argument("--account")
        listing.add_argument("--limit", type=int, default=20)
        listing.add_argument("--json", action="store_true")
    admin.add_commands(commands)  # faxes show|retry|cancel ID, purge, backup
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(config_path(args.config))
        logs.configure(settings.logging)  # plain or JSON lines on stderr
        return _dispatch(args, settings)
    except ConfigError as exc:
        print(f"fax-gateway: {exc}", file=sys.stderr)
        return 2
    except InvalidFieldError as exc:
        print(f"fax-gateway: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"fax-gateway: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        from gateway.daemon import serve

        serve(settings, config_path(args.config))
        return 0
    if args.command == "check-config":
        from gateway.notify import check_settings
        from gateway.smtp.server import tls_context

        tls_context(settings.smtp)  # the certificate and key load, as at start
        check_settings(settings.notifications)  # templates, TLS files: as the daemon would
        storage = _storage_line(settings)
        if storage.startswith("fax-gateway:"):
            print(storage, file=sys.stderr)
            return 2
        print(storage)
        print(f"configuration ok: {config_path(args.config)}")
        return 0
    if args.command == "migrate":
        from gateway.store.lifecycle import migrate

        _emit(asyncio.run(migrate(settings.storage)))
        return 0
    if admin.handles(args):
        return admin.run(args, settings)
    handlers: dict[str, Callable[[Store], Awaitable[int]]] = {
        "accounts": lambda store: _create_account(store, args),
        "faxboxes": lambda store: _create_faxbox(store, args, settings),
        "smtplog": lambda store: _list_smtplog(store, args),
        "faxes": lambda store: _list_faxes(store, args),
    }
    return asyncio.run(_with_store(settings, handlers[args.command]))


def _storage_line(settings: Settings) -> str:
    """Which backend check-config found, and (PostgreSQL) whether it connects."""
    from gateway.errors import StorageError
    from gateway.store.lifecycle import describe

    try:
        return asyncio.run(describe(settings.storage))
    except StorageError as exc:
        return f"fax-gateway: {exc}"


async def _with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    store = store_for(settings.storage)
    await store.open()
    try:
        return await action(store)
    finally:
        await store.close()


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


async def _create_account(store: Store, args: argparse.Namespace) -> int:
    account, auth_token, api_key = await store.create_account(args.name, args.realm)
    _emit(
        {
            "id": account.id,
            "name": account.name,
            "realm": account.realm,
            "auth_token": auth_token,
            "api_key": api_key,
        }
    )
    return 0


async def _create_faxbox(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    await store.get_account(args.account)
    region = (args.region or settings.smtp.default_region).upper()
    if not 1 <= args.retries <= 20:
        raise InvalidFieldError("retries", "range", "retries must be between 1 and 20")

    def number(field: str, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_api_number(value, region)
        except GatewayError as exc:
            raise InvalidFieldError(field, "format", str(exc)) from exc

    faxbox = await store.create_faxbox(
        Faxbox(
            id="",
            account_id=args.account,
            name=args.name,
            smtp_email_address="",
            custom_smtp_email_address=args.custom_smtp_email_address,
            caller_id=number("caller_id", args.caller_id),
            caller_name=args.caller_name,
            fax_header=args.fax_header,
            fax_identity=args.fax_identity,
            fax_number=number("fax_number", args.fax_number),
            owner_email=args.owner_email,
            smtp_permission_list=tuple(validate_rule(p) for p in args.permit),
            outbound_notify=tuple(args.notify_email),
            inbound_notify=tuple(args.notify_email),
            retries=args.retries,
            default_region=region,
            fax_timezone=args.timezone,
            resolution=args.resolution,
            paper=args.paper or settings.render.paper,
            cover_page=args.cover_page,
            include_body=args.include_body,
        ),
        settings.smtp.default_smtp_domain,
        smtp_password=args.smtp_password,
    )
    _emit(faxbox_view(faxbox))
    return 0


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _list_smtplog(store: Store, args: argparse.Namespace) -> int:
    if args.account:
        await _require_account(store, args.account)
    entries = await store.recent_smtplog(args.account, max(1, args.limit))
    if args.json:
        _emit([smtplog_summary(e) for e in entries])
        return 0
    for e in entries:
        rcpts = ", ".join(f"{r.address} [{r.reply[:3]}]" for r in e.recipients) or "-"
        print(
            f"{_when(e.created)}  {e.id}  {e.peer_ip or '-'}  from=<{e.mail_from or ''}>  "
            f"to={rcpts}  reply={e.reply_text or '-'}"
        )
        for error in e.errors:
            print(f"    error: {error}")
    return 0


async def _list_faxes(store: Store, args: argparse.Namespace) -> int:
    if args.account:
        await _require_account(store, args.account)
    faxes = await store.recent_faxes(args.account, max(1, args.limit))
    if args.json:
        _emit([fax_summary(f) for f in faxes])
        return 0
    for f in faxes:
        pages = "-" if f.pages is None else str(f.pages)
        print(
            f"{_when(f.created)}  {f.id}  {f.direction.value:8}  {f.status.value:15}  "
            f"to={f.to_number}  pages={pages}  attempts={f.attempts}"
            + (f"  error={f.error}" if f.error else "")
        )
    return 0


async def _require_account(store: Store, account_id: str) -> None:
    try:
        await store.get_account(account_id)
    except NotFoundError as exc:
        raise NotFoundError(f"no account {account_id}") from exc
