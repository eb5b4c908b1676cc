"""What every group of store operations shares: the database and the clock."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from gateway.models import SourceDocument
from gateway.store.database import Database


class StoreBase:
    def __init__(
        self, path: Path, synchronous: str = "full", clock: Callable[[], float] = time.time
    ) -> None:
        self.db = Database(path, synchronous)
        self.clock = clock

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

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
