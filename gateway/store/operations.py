"""What operators do beside the API: retry or cancel a job from the command line, and the
figures the metrics endpoint reads (faxes by status, the queue, the notification backlog).

Every change is one guarded UPDATE, so it cannot race a worker: a job a worker has just
claimed is ``processing`` and is left alone.
"""

from __future__ import annotations

from gateway.errors import ConflictError, NotFoundError
from gateway.models import Fax
from gateway.store.base import append_smtplog_error
from gateway.store.notifications import NotificationStore
from gateway.store.records import QueueStats, TxResultRecord
from gateway.store.rows import dumps, fax_from_row

__all__ = ["CANCELLED", "OperationsStore", "QueueStats"]  # QueueStats's old home

CANCELLED = "cancelled by admin"


class OperationsStore(NotificationStore):
    async def retry_fax(self, fax_id: str, more_attempts: int) -> Fax:
        """A failed outbound job goes back to work with ``more_attempts`` attempts beyond those
        it has made (earlier attempts stay on record, numbered on from them).

        It is due at once if its fax image is kept; it is rendered again if only the original
        is; ConflictError if retention already purged its documents.
        """
        now = self.clock()
        async with self.database.transaction() as db:
            async with db.execute(
                "SELECT f.*, EXISTS (SELECT 1 FROM fax_documents d WHERE d.fax_id = f.id"
                " AND d.role = 'tiff') AS has_image, EXISTS (SELECT 1 FROM fax_documents d"
                " WHERE d.fax_id = f.id AND d.role = 'original') AS has_original"
                " FROM faxes f WHERE f.id = ?",
                (fax_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"fax {fax_id} not found")
            if row["direction"] != "outbound" or row["status"] != "failed":
                raise ConflictError(
                    f"fax {fax_id} is {row['direction']} {row['status']}; only failed outbound"
                    " faxes can be retried"
                )
            if row["has_image"]:
                status = "pending"
            elif row["has_original"] or row["document_request"]:
                status = "attaching_files"
            else:
                raise ConflictError(f"fax {fax_id} has no documents left (purged); resend it")
            cur = await db.execute(
                # A fresh start for the crash rule too: the admin decided to try again.
                "UPDATE faxes SET status = ?, retries = attempts + ?, error = NULL,"
                " render_crashes = 0,"
                " next_attempt_at = ?, delivered = NULL, lease_owner = NULL,"
                " lease_expires = NULL, modified = ? WHERE id = ? AND status = 'failed'"
                " RETURNING *",
                (status, more_attempts, now, now, fax_id),
            )
            updated = await cur.fetchone()
            assert updated is not None  # the write lock is held since the SELECT
        return fax_from_row(updated)

    async def cancel_fax(self, fax_id: str) -> Fax:
        """A job not yet sent (``attaching_files``, ``pending``) fails with "cancelled by admin";
        its record and documents stay (retention removes them), and its sender is notified
        like for any failure. A job being transmitted cannot be cancelled: ConflictError."""
        now = self.clock()
        async with self.database.transaction() as db:
            async with db.execute("SELECT * FROM faxes WHERE id = ?", (fax_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"fax {fax_id} not found")
            if row["direction"] != "outbound" or row["status"] not in (
                "attaching_files",
                "pending",
            ):
                hint = "; try again when the attempt ends" if row["status"] == "processing" else ""
                raise ConflictError(f"fax {fax_id} is {row['status']}, not waiting{hint}")
            cur = await db.execute(
                "UPDATE faxes SET status = 'failed', error = ?, tx_result = ?, modified = ?,"
                " next_attempt_at = NULL, lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND status IN ('attaching_files', 'pending') RETURNING *",
                (
                    CANCELLED,
                    dumps(
                        TxResultRecord.unsent(
                            CANCELLED, "cancelled", now - row["created"]
                        ).as_dict()
                    ),
                    now,
                    fax_id,
                ),
            )
            updated = await cur.fetchone()
            assert updated is not None
            if updated["smtplog_id"]:
                await append_smtplog_error(db, updated["smtplog_id"], f"fax {fax_id}: {CANCELLED}")
            await self._enqueue_notifications(db, fax_id, "outbound_failed")
        return fax_from_row(updated)

    async def queue_stats(self) -> QueueStats:
        now = self.clock()
        stats = QueueStats()
        for group in await self.database.fetchall(
            "SELECT direction, status, count(*) FROM faxes GROUP BY direction, status"
        ):
            stats.faxes[(str(group[0]), str(group[1]))] = int(group[2])
        row = await self.database.fetchone(
            "SELECT count(*) FROM faxes WHERE status = 'pending' AND next_attempt_at <= ?", (now,)
        )
        stats.due = int(row[0]) if row else 0
        row = await self.database.fetchone(
            "SELECT min(created) FROM faxes WHERE direction = 'outbound'"
            " AND status IN ('attaching_files', 'pending', 'processing')"
        )
        stats.oldest_unfinished = None if row is None or row[0] is None else float(row[0])
        row = await self.database.fetchone(
            "SELECT count(*) FROM notifications WHERE state IN ('pending', 'sending')"
        )
        stats.notification_backlog = int(row[0]) if row else 0
        return stats
