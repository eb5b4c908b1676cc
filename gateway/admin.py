"""Admin commands beside the listings: ``faxes show|retry|cancel ID``, ``purge``, ``backup PATH``.

They work on the database directly, also while the daemon runs: every change is one guarded
transaction (a job a worker holds is never touched), and the daemon picks changed jobs up at
its next poll (within ``worker.poll_s`` x 5).

Choices, for operators:

- ``retry`` takes a *failed* outbound job back to work. Its earlier attempts stay on record
  and keep their numbers; it is allowed ``--attempts N`` more (default: its faxbox's
  ``retries``, or 1 if the faxbox is gone). A job whose fax image is kept is due at once; one
  that failed before rendering is rendered again.
- ``cancel`` fails a job that is not yet being sent (``attaching_files`` or ``pending``) with
  the error "cancelled by admin", and keeps its record and documents for the record (unlike
  the API's DELETE, which erases them); retention removes them in time. Its sender gets the
  usual failure notification. A job being transmitted cannot be cancelled (exit 1): the call
  is already under way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway import housekeeping
from gateway.config import RetentionSettings, Settings
from gateway.errors import NotFoundError
from gateway.store import AdminStore, store_for
from gateway.views import fax_view

FAX_ACTIONS = ("show", "retry", "cancel")
COMMANDS = ("purge", "backup")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the admin commands (the ``faxes`` listing parser must exist already)."""
    faxes = commands.choices["faxes"]
    faxes.add_argument(
        "fax_action", nargs="?", choices=FAX_ACTIONS, help="act on one fax (else: list faxes)"
    )
    faxes.add_argument("fax_id", nargs="?", metavar="ID")
    faxes.add_argument(
        "--attempts", type=int, help="retry: attempts allowed beyond those made (1-20)"
    )
    purge = commands.add_parser("purge", help="apply [retention] now (prints what went)")
    for kind in ("documents", "faxes", "smtplog"):
        purge.add_argument(
            f"--{kind}-days", type=int, metavar="N", help=f"override retention.{kind}_days"
        )
    backup = commands.add_parser(
        "backup", help="copy the live database to PATH (SQLite online backup)"
    )
    backup.add_argument("path", metavar="PATH")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")


def handles(args: argparse.Namespace) -> bool:
    return args.command in COMMANDS or (
        args.command == "faxes" and getattr(args, "fax_action", None) is not None
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run an admin command; its exit status."""
    if args.command == "faxes" and not args.fax_id:
        print(f"fax-gateway: faxes {args.fax_action} needs a fax ID", file=sys.stderr)
        return 2
    if args.command == "backup":
        args.path = Path(args.path).absolute()
        problem = _backup_problem(settings, args.path, args.force)
        if problem:
            print(f"fax-gateway: {problem}", file=sys.stderr)
            return 2
    return asyncio.run(_with_store(settings, args))


async def _with_store(settings: Settings, args: argparse.Namespace) -> int:
    store = store_for(settings.storage)
    await store.open()
    try:
        if args.command == "purge":
            return await _purge(store, settings.retention, args)
        if args.command == "backup":
            _emit(await store.backup(args.path))
            return 0
        return await _fax_action(store, args)
    finally:
        await store.close()


async def _fax_action(store: AdminStore, args: argparse.Namespace) -> int:
    if args.fax_action == "show":
        fax = await store.get_fax(args.fax_id)
        data = fax_view(fax, await store.fax_attempts(fax.id))
        data["notifications_log"] = await store.fax_notifications(fax.id)
        if args.json:
            _emit(data)
        else:
            _print_fax(data)
        return 0
    if args.fax_action == "retry":
        attempts = args.attempts
        if attempts is None:
            attempts = await _faxbox_retries(store, args.fax_id)
        if not 1 <= attempts <= 20:
            print("fax-gateway: --attempts must be between 1 and 20", file=sys.stderr)
            return 2
        fax = await store.retry_fax(args.fax_id, attempts)
    else:
        fax = await store.cancel_fax(args.fax_id)
    _emit(
        {
            "id": fax.id,
            "status": fax.status.value,
            "attempts": fax.attempts,
            "retries": fax.retries,
            "error": fax.error,
        }
    )
    return 0


async def _faxbox_retries(store: AdminStore, fax_id: str) -> int:
    fax = await store.get_fax(fax_id)
    if fax.faxbox_id is None:
        return 1
    try:
        return (await store.get_faxbox(fax.faxbox_id)).retries
    except NotFoundError:
        return 1


async def _purge(store: AdminStore, retention: RetentionSettings, args: argparse.Namespace) -> int:
    overrides = {
        f"{kind}_days": value
        for kind in ("documents", "faxes", "smtplog")
        if (value := getattr(args, f"{kind}_days")) is not None
    }
    if any(v < 0 for v in overrides.values()):
        print("fax-gateway: days must be 0 or more", file=sys.stderr)
        return 2
    settings = retention.model_copy(update=overrides)
    result = await housekeeping.purge(store, settings)
    _emit(
        {
            "purged": result.as_dict(),
            "retention_days": {
                "documents": settings.documents_days,
                "faxes": settings.faxes_days,
                "smtplog": settings.smtplog_days,
            },
        }
    )
    return 0


def _backup_problem(settings: Settings, target: Path, force: bool) -> str | None:
    source = settings.storage.path
    if not source.exists():
        return f"no database at {source} (storage.path)"
    if target.exists() and target.resolve() == source.resolve():
        return "the backup path is the live database itself"
    if target.is_dir():
        return f"{target} is a directory; give the file name of the copy"
    if target.exists() and not force:
        return f"{target} exists; use --force to replace it"
    if not target.parent.is_dir():
        return f"no directory {target.parent}"
    return None


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _when(gregorian: int | None) -> str:
    if gregorian is None:
        return "-"
    unix = gregorian - 62167219200
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_SHOWN = (
    "id",
    "direction",
    "status",
    "error",
    "from_number",
    "to_number",
    "faxbox_id",
    "account_id",
    "pages",
    "attempts",
    "retries",
    "message_id",
    "subject",
    "source",
    "smtplog_id",
)


def _print_fax(data: dict[str, Any]) -> None:
    for key in _SHOWN:
        print(f"{key + ':':18}{'-' if data.get(key) is None else data[key]}")
    for key in ("created", "modified", "delivered"):
        print(f"{key + ':':18}{_when(data.get(key))}")
    for attempt in data.get("attempts_log", []):
        print(f"attempt:          {json.dumps(attempt, sort_keys=True, default=str)}")
    for note in data.get("notifications_log", []):
        print(f"notification:     {note['channel']} {note['to']} {note['event']} {note['state']}")
