"""Retention: forget finished faxes, their document bytes and old smtplog rows on schedule.

Only finished faxes (``completed``, ``failed``) are ever purged: a job still being sent keeps
its documents whatever its age, since purging it would break a delivery already promised
with a 250. Age counts from ``created`` (when the gateway received the fax), because that is
what a "keep no longer than N days" rule for medical and legal documents counts from.

Work goes in batches, one short transaction each, so a large purge never holds the write lock
long enough to make an SMTP commit wait. Freed pages are zeroed (``secure_delete``) so that
purged documents do not stay readable in the file until SQLite reuses the space.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.errors import StorageError
from gateway.store.base import StoreBase, drop_orphans
from gateway.store.records import PurgeResult

__all__ = ["PurgeResult", "RetentionStore"]  # PurgeResult's old home, still importable

BATCH = 200
_FINAL = "status IN ('completed', 'failed')"
# A fax whose outcome is still being notified keeps everything: the email attaches its PDF.
_NOTIFIED = (
    " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.fax_id = faxes.id"
    " AND n.state IN ('pending', 'sending'))"
)


class RetentionStore(StoreBase):
    async def purge(
        self,
        documents_before: float | None,
        faxes_before: float | None,
        smtplog_before: float | None,
    ) -> PurgeResult:
        """Purge what is older than each cutoff (Unix time; None = keep that kind forever)."""
        result = PurgeResult()
        busy = _NOTIFIED
        if faxes_before is not None:
            while await self._purge_faxes(faxes_before, busy, result) == BATCH:
                pass
        if documents_before is not None:
            while await self._strip_documents(documents_before, busy, result) == BATCH:
                pass
        if smtplog_before is not None:
            while await self._purge_smtplog(smtplog_before, result) == BATCH:
                pass
        if result.documents or result.faxes or result.smtplog:
            # Move the zeroed pages from the WAL into the database file now, not at some later
            # checkpoint; PASSIVE never waits for readers.
            await self.database.fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        return result

    async def backup(self, target: Path) -> dict[str, Any]:
        """Copy the live database to ``target`` with SQLite's online backup API: a consistent
        snapshot even while the daemon writes (WAL readers never block the writer). The copy
        is checked (``integrity_check``) before it replaces ``target``, so a failed backup
        never leaves a broken file under the name a restore would use."""
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        try:
            await self.database.backup_to(partial)
            figures = await _check_copy(partial)
            size = _commit(partial, target)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"backup to {target} failed: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return {"path": str(target), "bytes": size, **figures}

    async def _purge_faxes(self, before: float, busy: str, result: PurgeResult) -> int:
        async with self.database.transaction() as db:
            ids = await _ids(
                db,
                f"SELECT id FROM faxes WHERE {_FINAL} AND created < ?{busy}"
                " ORDER BY created LIMIT ?",
                (before, BATCH),
            )
            if not ids:
                return 0
            documents = await _linked_documents(db, ids)
            await db.execute("PRAGMA secure_delete = ON")
            # attempts, fax_documents and notifications go with the fax (ON DELETE CASCADE).
            await db.execute(f"DELETE FROM faxes WHERE id IN ({_marks(ids)})", ids)
            _count_dropped(result, await drop_orphans(db, documents))
        result.faxes += len(ids)
        return len(ids)

    async def _strip_documents(self, before: float, busy: str, result: PurgeResult) -> int:
        async with self.database.transaction() as db:
            ids = await _ids(
                db,
                f"SELECT id FROM faxes WHERE {_FINAL} AND created < ?{busy}"
                " AND EXISTS (SELECT 1 FROM fax_documents fd WHERE fd.fax_id = faxes.id)"
                " ORDER BY created LIMIT ?",
                (before, BATCH),
            )
            if not ids:
                return 0
            documents = await _linked_documents(db, ids)
            await db.execute("PRAGMA secure_delete = ON")
            await db.execute(f"DELETE FROM fax_documents WHERE fax_id IN ({_marks(ids)})", ids)
            _count_dropped(result, await drop_orphans(db, documents))
        result.faxes_stripped += len(ids)
        return len(ids)

    async def _purge_smtplog(self, before: float, result: PurgeResult) -> int:
        async with self.database.transaction() as db:
            await db.execute("PRAGMA secure_delete = ON")
            cur = await db.execute(
                "DELETE FROM smtplog WHERE id IN"
                " (SELECT id FROM smtplog WHERE created < ? ORDER BY created LIMIT ?)",
                (before, BATCH),
            )
            count = cur.rowcount
        result.smtplog += count
        return count


def _marks(values: list[str] | list[int]) -> str:
    return ", ".join("?" * len(values))


async def _ids(db: aiosqlite.Connection, sql: str, params: tuple[object, ...]) -> list[str]:
    async with db.execute(sql, params) as cur:
        return [str(r[0]) for r in await cur.fetchall()]


async def _linked_documents(db: aiosqlite.Connection, fax_ids: list[str]) -> list[int]:
    async with db.execute(
        f"SELECT DISTINCT document_id FROM fax_documents WHERE fax_id IN ({_marks(fax_ids)})",
        fax_ids,
    ) as cur:
        return [int(r[0]) for r in await cur.fetchall()]


def _count_dropped(result: PurgeResult, dropped: tuple[int, int]) -> None:
    result.documents += dropped[0]
    result.document_bytes += dropped[1]


async def _check_copy(path: Path) -> dict[str, Any]:
    async with aiosqlite.connect(path) as db:
        # One self-contained file: no -wal file beside it that a copy to tape could miss.
        await db.execute("PRAGMA journal_mode=DELETE")
        async with db.execute("PRAGMA integrity_check") as cur:
            problems = [str(r[0]) for r in await cur.fetchall()]
        if problems != ["ok"]:
            raise StorageError(f"the copy failed its integrity check: {'; '.join(problems[:5])}")
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        counts: dict[str, int] = {}
        for table in ("accounts", "faxboxes", "faxes", "documents", "smtplog"):
            async with db.execute(f"SELECT count(*) FROM {table}") as cur:
                found = await cur.fetchone()
            counts[table] = int(found[0]) if found else 0
    return {"integrity": "ok", "schema_version": int(row[0]) if row else 0, "rows": counts}


def _commit(partial: Path, target: Path) -> int:
    """Rename the checked copy into place, durably (the directory entry too); its size."""
    os.replace(partial, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target.stat().st_size
