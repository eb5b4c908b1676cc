"""``PostgresStore``: every store role on one PostgreSQL database shared by several nodes.

It runs the same store operations as ``SqliteStore`` (gateway/store/{core,jobs,...}.py, their
SQL rewritten by ``dialect``); what one SQLite writer gave for free is done by the database
across nodes: ``claim_due`` runs under one advisory lock (a node's choice of due jobs sees
every other node's committed claims; a partial unique index backs "one call per number"),
the render and notification claims take rows ``FOR UPDATE SKIP LOCKED``, and an SMTP message
accepted twice (a retry reaching another node) finds the first job under an advisory lock of
the message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from gateway.errors import StorageError
from gateway.models import NewFax, SmtpLogEntry, SourceDocument
from gateway.store.base import StoreBase
from gateway.store.core import FAX_INSERT, fax_values
from gateway.store.database import Database, _to_the_end
from gateway.store.postgres.database import (
    Connection,
    PgDatabase,
    announce,
    redacted,
    serialized,
)
from gateway.store.records import Claim
from gateway.store.rows import SMTPLOG_INSERT, smtplog_values
from gateway.store.sqlite import SqliteStore

PG_DUMP = Path(os.environ.get("FAX_GATEWAY_PG_BIN", "/usr/lib/postgresql/15/bin")) / "pg_dump"


class PostgresStore(SqliteStore):
    """``PostgresStore(PgDatabase(url), clock)``; ``open`` connects and refuses a schema it
    does not know (``migrate`` applies the migrations: ``fax-gateway migrate``)."""

    def __init__(self, database: PgDatabase, clock: Callable[[], float] = time.time) -> None:
        # The shared operations see the pool through the SQLite Database's shape.
        StoreBase.__init__(self, cast(Database, database), clock)
        self.pg = database

    async def open(self) -> None:
        await self.pg.open()

    async def migrate(self) -> int:
        """Apply missing migrations; the schema version now."""
        await self.pg.open(migrate=True)
        try:
            return self.pg.schema_version
        finally:
            await self.pg.close()

    async def accept_message(
        self,
        entry: SmtpLogEntry,
        faxes: Sequence[tuple[str, NewFax]],
        documents: Sequence[SourceDocument],
        message_digest: str | None = None,
        duplicate_since: float | None = None,
    ) -> None:
        """The jobs, their documents and the smtplog row in one commit. A job of the same
        message made since ``duplicate_since`` (accepted by another node a moment ago) is not
        made again: the smtplog row names the existing job instead. A caller cancelled
        meanwhile (its client hung up) does not cut the commit short: it waits for it."""
        token = announce.set(True)
        try:
            await _to_the_end(
                self._accept(entry, faxes, documents, message_digest, duplicate_since)
            )
        finally:
            announce.reset(token)

    async def listen(self, on_work: Callable[[], None]) -> None:
        """Call ``on_work`` (wake the render stage, the worker and the notifier) when any node
        commits new jobs or makes jobs due; a node that is not told still polls."""
        await self.pg.listen(on_work)

    async def create_fax(
        self, fax: NewFax, documents: Sequence[SourceDocument] = (), fax_id: str | None = None
    ) -> str:
        token = announce.set(True)
        try:
            return await super().create_fax(fax, documents, fax_id)
        finally:
            announce.reset(token)

    async def finish_render(
        self, fax_id: str, owner: str, tiff: bytes, pdf: bytes, pages: int
    ) -> bool:
        token = announce.set(True)
        try:
            return await super().finish_render(fax_id, owner, tiff, pdf, pages)
        finally:
            announce.reset(token)

    async def _accept(
        self,
        entry: SmtpLogEntry,
        faxes: Sequence[tuple[str, NewFax]],
        documents: Sequence[SourceDocument],
        message_digest: str | None,
        duplicate_since: float | None,
    ) -> None:
        now = self.clock()
        async with self.pg.transaction() as db:
            # The same message reaching two nodes at once: whichever takes the message's lock
            # second finds (its statement's snapshot is taken after the first one's COMMIT)
            # the job the first made. Not a unique index: after [smtp] idempotency_window_s
            # the same message again is a new fax, which such an index would refuse.
            keys = sorted(
                {k for _, f in faxes if (k := _message_key(f, message_digest)) is not None}
            )
            for key in keys:  # in one order on every node: no deadlock between two of them
                await db.execute("SELECT pg_advisory_xact_lock(?, ?)", (_MESSAGE_LOCK, key))
            fax_ids: dict[str, str] = {}
            for fax_id, fax in faxes:
                found = None
                if message_digest is not None and fax.message_id is not None:
                    found = await _same_message_job(db, fax, message_digest, duplicate_since)
                fax_ids[fax_id] = found or fax_id
            to_make = [(fax_id, fax) for fax_id, fax in faxes if fax_ids[fax_id] == fax_id]
            ids = [await self._insert_document(_sqlite(db), d.data) for d in documents if to_make]
            for fax_id, fax in to_make:
                await db.execute(FAX_INSERT, fax_values(fax_id, fax, now, entry.id, message_digest))
                for seq, (doc_id, doc) in enumerate(zip(ids, documents, strict=True)):
                    await self._link_document(_sqlite(db), fax_id, "original", seq, doc_id, doc)
            if any(old != new for old, new in fax_ids.items()):
                entry = dataclasses.replace(
                    entry, fax_ids=[fax_ids.get(i, i) for i in entry.fax_ids]
                )
            await db.execute(SMTPLOG_INSERT, smtplog_values(entry))

    async def claim_due(
        self, owner: str, lease_s: float, max_per_account: int, limit: int
    ) -> list[Claim]:
        # One claim at a time across all nodes: the choice of due jobs (one per number, at
        # most max_per_account running) must see every other node's committed claims.
        token = serialized.set(True)
        try:
            return await super().claim_due(owner, lease_s, max_per_account, limit)
        finally:
            serialized.reset(token)

    async def backup(self, target: Path) -> dict[str, Any]:
        """``pg_dump --format=custom`` of the live database to ``target`` (a consistent
        snapshot: one repeatable-read transaction); restore with ``pg_restore``."""
        partial = target.with_name(f".{target.name}.partial")
        process = await asyncio.create_subprocess_exec(
            str(PG_DUMP),
            "--format=custom",
            f"--file={partial}",
            f"--dbname={self.pg.url}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            partial.unlink(missing_ok=True)
            message = redacted(err.decode(errors="replace").strip())
            raise StorageError(f"backup to {target} failed: pg_dump: {message}")
        os.replace(partial, target)
        size = await asyncio.to_thread(os.path.getsize, target)
        return {"path": str(target), "bytes": size, "format": "pg_dump"}


_MESSAGE_LOCK = 0x66617833  # "fax3": the advisory lock class of one SMTP message's jobs


def _message_key(fax: NewFax, digest: str | None) -> int | None:
    """The advisory lock key of the message's job to ``fax``'s number (32 bits: a clash
    only makes two messages wait for each other)."""
    if digest is None or fax.message_id is None:
        return None
    text = "\x1f".join((fax.message_id, fax.faxbox_id or "", fax.to_number, digest))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big", signed=True)


async def _same_message_job(
    db: Connection, fax: NewFax, digest: str, since: float | None
) -> str | None:
    row = await (
        await db.execute(
            "SELECT id FROM faxes WHERE message_id = ? AND faxbox_id IS NOT DISTINCT FROM ?"
            " AND to_number = ? AND message_digest = ? AND direction = 'outbound'"
            " AND created >= ? ORDER BY created LIMIT 1",
            (
                fax.message_id,
                fax.faxbox_id,
                fax.to_number,
                digest,
                _EVER if since is None else since,
            ),
        )
    ).fetchone()
    return None if row is None else str(row["id"])


_EVER = float("-inf")


def _sqlite(db: Connection) -> Any:
    return db  # the shared helpers take aiosqlite's connection; ours has its execute


__all__ = ["PgDatabase", "PostgresStore", "redacted"]
