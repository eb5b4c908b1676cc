"""Store operations behind the HTTP API: keyset-paginated folder lists and the smtplog, hard
deletes that take the document bytes with them, stored renditions by role, copies of a job
(resubmit, forward) and faxbox changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiosqlite

from gateway import credentials
from gateway.errors import ConflictError, InvalidFieldError, NotFoundError, StorageError
from gateway.models import (
    Direction,
    DocumentKind,
    Fax,
    Faxbox,
    NewFax,
    SmtpLogEntry,
    SourceDocument,
)
from gateway.store.base import StoreBase, drop_orphans, given
from gateway.store.records import Window
from gateway.store.rows import fax_from_row, faxbox_from_row, faxbox_settings, smtplog_from_row

# Written out literally (not as parameters) so that SQLite sees they imply the WHERE clause of
# the partial indexes of migration 3 and reads a page from the folder's own index.
_ACTIVE = "status IN ('attaching_files', 'pending', 'processing')"
_FINAL = "status IN ('completed', 'failed')"

# filter_<field>=value on list rows: the row fields clients may filter on, as SQL that gives
# the value the row shows (gateway.views.fax_summary).
FAX_FILTERS: Mapping[str, str] = {
    "id": "id",
    "status": "status",
    "faxbox_id": "faxbox_id",
    "from_number": "from_number",
    "to_number": "to_number",
    "from_name": "from_name",
    "to_name": "to_name",
    "from": "COALESCE(NULLIF(from_number, ''), NULLIF(from_name, ''), '')",
    "to": "to_number",
    "attempts": "CAST(attempts AS TEXT)",
    "pages": "CAST(pages AS TEXT)",
}


__all__ = ["FAX_FILTERS", "ListingStore", "Window"]  # Window's old home, still importable


def window_clause(window: Window) -> tuple[str, list[Any]]:
    """The WHERE tail, ORDER BY and LIMIT that read ``window``'s rows."""
    # With a start key, the key replaces the range bound on its side: SQLite seeks an index
    # by one bound per side, and it must seek to the key, not scan from the range's end.
    if window.start is None:
        sql = " AND created >= ? AND created < ?"
        params: list[Any] = [window.created_from, window.created_to]
    elif window.ascending:
        sql = " AND (created, id) >= (?, ?) AND created < ?"
        params = [*window.start, window.created_to]
    else:
        sql = " AND created >= ? AND (created, id) <= (?, ?)"
        params = [window.created_from, *window.start]
    order = "ASC" if window.ascending else "DESC"
    sql += f" ORDER BY created {order}, id {order} LIMIT ?"
    params.append(-1 if window.limit is None else window.limit)
    return sql, params


class ListingStore(StoreBase):
    if TYPE_CHECKING:
        # Provided by CoreStore, the other base of Store: one definition of a job row.
        async def _insert_fax(
            self,
            db: aiosqlite.Connection,
            fax_id: str,
            fax: NewFax,
            now: float,
            smtplog_id: str | None,
        ) -> None: ...

    # -- lists ---------------------------------------------------------------------------------

    async def list_faxes(
        self,
        account_id: str,
        direction: Direction,
        final: bool,
        window: Window,
        filters: Mapping[str, str] | None = None,
    ) -> list[Fax]:
        """One folder's rows (``final``: outbox/inbox, else outgoing/incoming) in the window."""
        folder = _FINAL if final else _ACTIVE
        sql = f"SELECT * FROM faxes WHERE account_id = ? AND direction = ? AND {folder}"
        params: list[Any] = [account_id, direction.value]
        for name, value in (filters or {}).items():
            if name not in FAX_FILTERS:
                return []  # no row has that field, as in Kazoo where such a filter matches none
            sql += f" AND {FAX_FILTERS[name]} = ?"
            params.append(value)
        tail, tail_params = window_clause(window)
        rows = await self.database.fetchall(sql + tail, params + tail_params)
        return [fax_from_row(r) for r in rows]

    async def list_smtplog(self, account_id: str | None, window: Window) -> list[SmtpLogEntry]:
        """An account's smtplog rows, or (``None``, admin only) every row, with or without one."""
        if account_id is None:
            sql, params = "SELECT * FROM smtplog WHERE TRUE", []
        else:
            sql, params = "SELECT * FROM smtplog WHERE account_id = ?", [account_id]
        tail, tail_params = window_clause(window)
        rows = await self.database.fetchall(sql + tail, params + tail_params)
        return [smtplog_from_row(r) for r in rows]

    # -- documents -----------------------------------------------------------------------------

    async def fax_document(self, fax_id: str, role: str) -> SourceDocument | None:
        """The first stored document of ``role`` (original, tiff, pdf), bytes included."""
        row = await self.database.fetchone(
            "SELECT fd.filename, fd.kind, fd.pages, d.data FROM fax_documents fd"
            " JOIN documents d ON d.id = fd.document_id"
            " WHERE fd.fax_id = ? AND fd.role = ? ORDER BY fd.seq LIMIT 1",
            (fax_id, role),
        )
        if row is None:
            return None
        return SourceDocument(
            kind=DocumentKind(row["kind"]),
            data=row["data"],
            filename=row["filename"],
            pages=row["pages"],
        )

    async def delete_fax(self, fax_id: str, account_id: str) -> Fax:
        """Delete a fax, its attempts and its document bytes; a pending job is thereby cancelled.

        A job mid-transmission (``processing``) cannot be deleted: ConflictError.
        """
        async with self.database.transaction() as db:
            fax = await _owned_fax(db, fax_id, account_id)
            if fax.status == "processing":
                raise ConflictError(f"fax {fax_id} is being transmitted; try again when it ends")
            document_ids = await _document_ids(db, fax_id)
            await _secure_delete(db)
            await db.execute("DELETE FROM faxes WHERE id = ?", (fax_id,))
            await drop_orphans(db, document_ids)
        return fax

    async def erase_fax_documents(self, fax_id: str, account_id: str) -> Fax:
        """Erase a finished fax's documents (every role) and keep its record."""
        async with self.database.transaction() as db:
            fax = await _owned_fax(db, fax_id, account_id)
            if fax.status not in ("completed", "failed"):
                raise ConflictError(
                    f"fax {fax_id} is still {fax.status.value}; delete the fax to cancel it"
                )
            document_ids = await _document_ids(db, fax_id)
            await _secure_delete(db)
            await db.execute("DELETE FROM fax_documents WHERE fax_id = ?", (fax_id,))
            await drop_orphans(db, document_ids)
        return fax

    async def create_fax_copy(self, fax: NewFax, source_id: str, role: str | None) -> str:
        """A new outbound job whose originals are the ``role`` documents of ``source_id``
        (none if ``role`` is None: the job fetches its ``document_request``).

        The bytes are shared, not copied. Without such documents the new job must carry a
        ``document_request`` to fetch, else ConflictError and nothing is created.
        """
        fax_id = credentials.new_id()
        async with self.database.transaction() as db:
            await self._insert_fax(db, fax_id, fax, self.clock(), None)
            copied = 0
            if role is not None:
                cur = await db.execute(
                    "INSERT INTO fax_documents"
                    " (fax_id, role, seq, document_id, filename, kind, pages)"
                    " SELECT ?, 'original', seq, document_id, filename, kind, pages"
                    " FROM fax_documents WHERE fax_id = ? AND role = ?",
                    (fax_id, source_id, role),
                )
                copied = cur.rowcount
            if copied < 1 and fax.document_request is None:
                raise ConflictError(f"fax {source_id} has no document left to send")
        return fax_id

    # -- faxboxes ------------------------------------------------------------------------------

    async def smtp_address_taken(self, address: str, except_faxbox_id: str | None = None) -> bool:
        """Whether a faxbox other than ``except_faxbox_id`` already answers at ``address``."""
        other = "" if except_faxbox_id is None else " AND id != ?"
        row = await self.database.fetchone(
            "SELECT 1 FROM faxboxes WHERE (smtp_email_address = ? OR custom_smtp_email_address = ?)"
            + other,
            (
                address.lower(),
                address.lower(),
                *given(except_faxbox_id),
            ),
        )
        return row is not None

    async def update_faxbox(self, faxbox: Faxbox, password_hash: str | None = None) -> Faxbox:
        """Save every field of ``faxbox`` (same id and account); ``password_hash`` if given."""
        now = self.clock()
        custom = faxbox.custom_smtp_email_address
        async with self.database.transaction() as db:
            if custom:
                async with db.execute(
                    "SELECT 1 FROM faxboxes WHERE id != ?"
                    " AND (smtp_email_address = ? OR custom_smtp_email_address = ?)",
                    (faxbox.id, custom, custom),
                ) as cur:
                    if await cur.fetchone() is not None:
                        raise _taken()
            try:
                cur = await db.execute(
                    "UPDATE faxboxes SET name = ?, custom_smtp_email_address = ?, fax_number = ?,"
                    " owner_email = ?, settings = ?, modified = ?,"
                    " smtp_password_hash = COALESCE(?, smtp_password_hash)"
                    " WHERE id = ? AND account_id = ? RETURNING *",
                    (
                        faxbox.name,
                        custom,
                        faxbox.fax_number,
                        faxbox.owner_email,
                        faxbox_settings(faxbox),
                        now,
                        password_hash,
                        faxbox.id,
                        faxbox.account_id,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "custom_smtp_email_address" in str(exc):
                    raise _taken() from exc
                raise StorageError(f"cannot update faxbox: {exc}") from exc
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"faxbox {faxbox.id} not found")
        return faxbox_from_row(row)

    async def clear_faxbox_password(self, faxbox_id: str, account_id: str) -> None:
        async with self.database.transaction() as db:
            await db.execute(
                "UPDATE faxboxes SET smtp_password_hash = NULL WHERE id = ? AND account_id = ?",
                (faxbox_id, account_id),
            )

    async def delete_faxbox(self, faxbox_id: str, account_id: str) -> Faxbox:
        """Delete a faxbox; its faxes stay, no longer linked to it (ON DELETE SET NULL)."""
        async with self.database.transaction() as db:
            cur = await db.execute(
                "DELETE FROM faxboxes WHERE id = ? AND account_id = ? RETURNING *",
                (faxbox_id, account_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"faxbox {faxbox_id} not found")
        return faxbox_from_row(row)


def _taken() -> InvalidFieldError:
    return InvalidFieldError("custom_smtp_email_address", "unique", "email address must be unique")


async def _owned_fax(db: aiosqlite.Connection, fax_id: str, account_id: str) -> Fax:
    async with db.execute(
        "SELECT * FROM faxes WHERE id = ? AND account_id = ?", (fax_id, account_id)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"fax {fax_id} not found")
    return fax_from_row(row)


async def _document_ids(db: aiosqlite.Connection, fax_id: str) -> list[int]:
    async with db.execute(
        "SELECT DISTINCT document_id FROM fax_documents WHERE fax_id = ?", (fax_id,)
    ) as cur:
        return [int(r[0]) for r in await cur.fetchall()]


async def _secure_delete(db: aiosqlite.Connection) -> None:
    # Deleting is for privacy ("remove all evidence"): zero the freed pages rather than leave
    # the bytes readable in the database file until SQLite happens to reuse them.
    await db.execute("PRAGMA secure_delete = ON")
