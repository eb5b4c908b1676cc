"""What every group of SQLite store operations shares: the injected database, the clock, and
the statements more than one group writes (documents, smtplog errors, orphaned documents)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from gateway.models import SourceDocument
from gateway.store.database import Database


class StoreBase:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database  # not yet open: ``open`` opens and migrates it
        self.clock = clock

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()

    async def writer_health(self, wait_s: float = 1.0) -> str | None:
        return await self.database.writer_health(wait_s)

    # Documents are stored once and linked to faxes by role: original, tiff, pdf.

    async def _insert_document(self, db: aiosqlite.Connection, data: bytes) -> int:
        cur = await db.execute(
            "INSERT INTO documents (data, size, sha256) VALUES (?, ?, ?)",
            (data, len(data), hashlib.sha256(data).hexdigest()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def _link_document(
        self,
        db: aiosqlite.Connection,
        fax_id: str,
        role: str,
        seq: int,
        document_id: int,
        doc: SourceDocument,
    ) -> None:
        await db.execute(
            "INSERT INTO fax_documents (fax_id, role, seq, document_id, filename, kind, pages)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (fax_id, role, seq, document_id, doc.filename, doc.kind.value, doc.pages),
        )

    async def _link_new_document(
        self, db: aiosqlite.Connection, fax_id: str, role: str, seq: int, doc: SourceDocument
    ) -> None:
        document_id = await self._insert_document(db, doc.data)
        await self._link_document(db, fax_id, role, seq, document_id, doc)


async def append_smtplog_error(db: aiosqlite.Connection, smtplog_id: str, error: str) -> None:
    """Add ``error`` to the smtplog row's list, in the caller's transaction: the admin reading
    the smtplog sees why a message it accepted never went out."""
    await db.execute(
        "UPDATE smtplog SET errors = json_insert(errors, '$[#]', ?) WHERE id = ?",
        (error, smtplog_id),
    )


async def drop_orphans(db: aiosqlite.Connection, document_ids: Iterable[int]) -> tuple[int, int]:
    """Delete those documents no fax links any more (a resubmitted copy may share them); the
    number deleted and their bytes."""
    count = size = 0
    for document_id in document_ids:
        cur = await db.execute(
            "DELETE FROM documents WHERE id = ?"
            " AND NOT EXISTS (SELECT 1 FROM fax_documents WHERE document_id = ?) RETURNING size",
            (document_id, document_id),
        )
        row = await cur.fetchone()
        await cur.close()
        if row is not None:
            count += 1
            size += int(row[0])
    return count, size


async def claim_rows(
    db: aiosqlite.Connection,
    table: str,
    owner: str,
    expires: float,
    due: str,
    due_params: tuple[object, ...],
    order: str,
    limit: int,
    also_set: str = "",
) -> list[aiosqlite.Row]:
    """Put up to ``limit`` rows of ``table`` that are ``due`` (oldest by ``order`` first) under
    ``owner``'s lease until ``expires``, in one statement; the rows as they now are."""
    cur = await db.execute(
        f"UPDATE {table} SET {also_set}lease_owner = ?, lease_expires = ? WHERE id IN ("
        f" SELECT id FROM {table} WHERE {due} ORDER BY {order} LIMIT ?) RETURNING *",
        (owner, expires, *due_params, limit),
    )
    return list(await cur.fetchall())


def given(value: Any) -> tuple[Any, ...]:
    """``value`` as a parameter if it is not None: for a condition written only when it is
    (``col = ?`` or no condition, where SQLite alone would take ``? IS NULL OR col = ?``)."""
    return () if value is None else (value,)
