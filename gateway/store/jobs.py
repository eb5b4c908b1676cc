"""The job engine's store operations: leases for rendering and sending, attempts, inbound faxes.

A lease (owner, expiry) is how a job is claimed: whoever holds an unexpired lease may move the
job on, and every state change checks the lease in its WHERE clause, so a worker that lost its
lease (it was too slow, or the daemon restarted) can never overwrite a newer decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from gateway import credentials
from gateway.models import DocumentKind, Fax, Faxbox, FaxStatus, SourceDocument
from gateway.routing import dedupe_addresses
from gateway.store.base import append_smtplog_error, claim_rows, given
from gateway.store.notifications import NotificationStore
from gateway.store.records import AttemptOutcome, Claim, TxResultRecord
from gateway.store.rows import dumps, fax_from_row, loads_or_none

__all__ = ["AttemptOutcome", "Claim", "JobStore"]  # the records' old home, still importable


class JobStore(NotificationStore):
    # -- rendering -----------------------------------------------------------------------------

    async def claim_attaching(self, owner: str, lease_s: float, limit: int) -> list[Fax]:
        now = self.clock()
        async with self.database.transaction() as db:
            rows = await claim_rows(
                db,
                "faxes",
                owner,
                now + lease_s,
                "status = 'attaching_files' AND (lease_expires IS NULL OR lease_expires < ?)",
                (now,),
                "created",
                limit,
            )
        return sorted((fax_from_row(r) for r in rows), key=lambda f: f.created)

    async def store_originals(
        self, fax_id: str, owner: str, documents: Sequence[SourceDocument]
    ) -> bool:
        """Keep a fetched document (``document.url``) as the job's original; False (nothing
        stored) if the render lease was lost or the originals are already there."""
        async with self.database.transaction() as db:
            cur = await db.execute(
                "SELECT 1 FROM faxes WHERE id = ? AND status = 'attaching_files'"
                " AND lease_owner = ? AND NOT EXISTS (SELECT 1 FROM fax_documents"
                " WHERE fax_id = faxes.id AND role = 'original')",
                (fax_id, owner),
            )
            if await cur.fetchone() is None:
                return False
            for seq, doc in enumerate(documents):
                await self._link_new_document(db, fax_id, "original", seq, doc)
        return True

    async def finish_render(
        self, fax_id: str, owner: str, tiff: bytes, pdf: bytes, pages: int
    ) -> bool:
        """Store the fax image and its PDF and make the job due; False if the lease was lost."""
        now = self.clock()
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET status = 'pending', pages = ?, next_attempt_at = ?,"
                " modified = ?, lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND status = 'attaching_files' AND lease_owner = ?",
                (pages, now, now, fax_id, owner),
            )
            if cur.rowcount != 1:
                return False
            await db.execute(
                "DELETE FROM fax_documents WHERE fax_id = ? AND role IN ('tiff', 'pdf')", (fax_id,)
            )
            for role, data, kind in (("tiff", tiff, DocumentKind.TIFF), ("pdf", pdf, "pdf")):
                doc = SourceDocument(
                    kind=DocumentKind(kind), data=data, filename=f"{fax_id}.{role}", pages=pages
                )
                await self._link_new_document(db, fax_id, role, 0, doc)
        return True

    async def fail_job(
        self, fax_id: str, error: str, tx_result: TxResultRecord, owner: str | None = None
    ) -> bool:
        """A permanent failure before or during sending: ``failed`` with the reason."""
        now = self.clock()
        held_by = "" if owner is None else " AND lease_owner = ?"
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET status = 'failed', error = ?, tx_result = ?, modified = ?,"
                " lease_owner = NULL, lease_expires = NULL"
                f" WHERE id = ? AND status NOT IN ('completed', 'failed'){held_by}"
                " RETURNING smtplog_id",
                (
                    error,
                    dumps(tx_result.as_dict()),
                    now,
                    fax_id,
                    *given(owner),
                ),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            await self._enqueue_notifications(db, fax_id, "outbound_failed")
            if row["smtplog_id"]:
                await append_smtplog_error(db, row["smtplog_id"], f"fax {fax_id}: {error}")
        return True

    async def release_renders(
        self, owner: str, fax_id: str | None = None, retry_at: float | None = None
    ) -> int:
        """Hand back render leases of ``owner`` (all of them, or ``fax_id``'s): the job stays in
        ``attaching_files``, claimable again at ``retry_at`` (at once if None), and nothing is
        counted against it. A stop does this for the renders it cut short."""
        async with self.database.transaction() as db:
            return await _release_renders(db, owner, fax_id, retry_at)

    async def count_render_crash(self, fax_id: str, owner: str, limit: int) -> int | None:
        """One more crash of the renderer on this job: its crash count, or None if the lease was
        lost. Below ``limit`` the lease is released in the same statement (the job is rendered
        again at once); at ``limit`` the caller still holds it, to fail the job."""
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET render_crashes = render_crashes + 1,"
                " lease_owner = CASE WHEN render_crashes + 1 < ? THEN NULL ELSE lease_owner END,"
                " lease_expires = CASE WHEN render_crashes + 1 < ? THEN NULL ELSE lease_expires END"
                " WHERE id = ? AND status = 'attaching_files' AND lease_owner = ?"
                " RETURNING render_crashes",
                (limit, limit, fax_id, owner),
            )
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    # -- sending -------------------------------------------------------------------------------

    async def claim_due(
        self, owner: str, lease_s: float, max_per_account: int, limit: int
    ) -> list[Claim]:
        """Claim up to ``limit`` due jobs, each under a lease, and open an attempt for each.

        Never two active transmissions to one number, at most ``max_per_account`` per account
        (both counted over every node sharing the database). Accounts take turns: each
        account's first transmission comes before any account's second, so one account's
        backlog cannot hold the others' faxes back; within an account, oldest due first.
        """
        claims: list[Claim] = []
        async with self.database.transaction() as db:
            # After BEGIN: the transaction may have waited for another node's claim, and an
            # attempt starts when it is decided (never before the one it follows ended).
            now = self.clock()
            chosen = await _all(db, _DUE_SQL, (now, max_per_account, limit))
            for row in chosen:
                cur = await db.execute(
                    "UPDATE faxes SET status = 'processing', attempts = attempts + 1,"
                    " lease_owner = ?, lease_expires = ?, modified = ?"
                    " WHERE id = ? AND status = 'pending' RETURNING *",
                    (owner, now + lease_s, now, row["id"]),
                )
                updated = await cur.fetchone()
                if updated is None:  # pragma: no cover - the same transaction just chose it
                    continue
                attempt = int(updated["attempts"])
                cur = await db.execute(
                    "INSERT INTO attempts (fax_id, number, started, outcome, lease_owner)"
                    " VALUES (?, ?, ?, 'running', ?)",
                    (row["id"], attempt, now, owner),
                )
                claims.append(Claim(fax_from_row(updated), attempt, cur.lastrowid))
        return claims

    async def renew_lease(self, fax_id: str, owner: str, lease_s: float) -> bool:
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET lease_expires = ? WHERE id = ? AND lease_owner = ?",
                (self.clock() + lease_s, fax_id, owner),
            )
            return cur.rowcount == 1

    async def finish_attempt(
        self,
        claim: Claim,
        owner: str,
        outcome: AttemptOutcome,
        next_attempt_at: float | None,
    ) -> bool:
        """Record the attempt and move the job on, atomically; False if the lease was lost."""
        now = self.clock()
        status = {
            "completed": FaxStatus.COMPLETED,
            "failed": FaxStatus.FAILED,
            "retry": FaxStatus.PENDING,
        }[outcome.outcome]
        error = None if status is FaxStatus.COMPLETED else outcome.tx_result.error_message
        result = dumps(outcome.tx_result.as_dict())
        # The attempts row claim_due opened; a Claim made before attempt ids were kept names
        # it by its number.
        if claim.attempt_id is not None:
            this_attempt, attempt_key = "id = ?", claim.attempt_id
        else:
            this_attempt, attempt_key = "number = ?", claim.attempt
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET status = ?, tx_result = ?, error = ?, modified = ?,"
                " delivered = ?, next_attempt_at = ?, lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND status = 'processing' AND lease_owner = ? RETURNING smtplog_id",
                (
                    status.value,
                    result,
                    error,
                    now,
                    now if status is FaxStatus.COMPLETED else None,
                    next_attempt_at,
                    claim.fax.id,
                    owner,
                ),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            await db.execute(
                "UPDATE attempts SET ended = ?, outcome = ?, failure_class = ?, result = ?"
                f" WHERE fax_id = ? AND outcome = 'running' AND {this_attempt}",
                (now, outcome.outcome, outcome.failure_class, result, claim.fax.id, attempt_key),
            )
            if status is FaxStatus.FAILED and row["smtplog_id"]:
                await append_smtplog_error(db, row["smtplog_id"], f"fax {claim.fax.id}: {error}")
            if status is not FaxStatus.PENDING:
                await self._enqueue_notifications(db, claim.fax.id, f"outbound_{status.value}")
        return True

    async def recover_expired(self) -> int:
        """Take back jobs whose lease expired (a crashed, killed or hung worker).

        The interrupted attempt keeps its row, marked ``interrupted``, and counts once (a job
        that crashes the gateway every time cannot loop forever); the job is retried at once if
        attempts remain, else it fails. A reception into a local faxbox that was cut short by
        the same crash ends as a failed inbound fax. Returns the number of outbound jobs.
        """
        now = self.clock()
        async with self.database.transaction() as db:
            expired = await _all(
                db,
                "SELECT id, attempts, retries, pages, created, smtplog_id FROM faxes"
                " WHERE status = 'processing' AND direction = 'outbound' AND lease_expires < ?",
                (now,),
            )
            for row in expired:
                await self._interrupt(db, row, now)
            receptions = await _all(
                db,
                "SELECT id FROM faxes WHERE status = 'processing' AND direction = 'inbound'"
                " AND lease_expires < ?",
                (now,),
            )
            for row in receptions:
                await self._fail_reception(db, row["id"], now)
        return len(expired)

    async def release_leases(self, owner: str) -> int:
        """Graceful stop: hand running jobs back; the cut-short attempt does not count.

        The attempt row stays (outcome ``released``), the job is due again at once, and a
        reception it was feeding into a local faxbox ends as a failed inbound fax.
        """
        now = self.clock()
        async with self.database.transaction() as db:
            rows = await _all(
                db,
                "SELECT id FROM faxes WHERE status = 'processing' AND direction = 'outbound'"
                " AND lease_owner = ?",
                (owner,),
            )
            for row in rows:
                await db.execute(
                    "UPDATE attempts SET ended = ?, outcome = 'released',"
                    " result = ? WHERE fax_id = ? AND outcome = 'running'",
                    (now, dumps({"success": False, "result_text": "released"}), row["id"]),
                )
                await db.execute(
                    "UPDATE faxes SET status = 'pending',"
                    " attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,"
                    " next_attempt_at = ?, lease_owner = NULL, lease_expires = NULL, modified = ?"
                    " WHERE id = ?",
                    (now, now, row["id"]),
                )
            receptions = await _all(
                db,
                "SELECT id FROM faxes WHERE status = 'processing' AND direction = 'inbound'"
                " AND lease_owner = ?",
                (owner,),
            )
            for row in receptions:
                await self._fail_reception(db, row["id"], now)
            await _release_renders(db, owner, None, None)
        return len(rows)

    async def _interrupt(self, db: aiosqlite.Connection, row: aiosqlite.Row, now: float) -> None:
        fax_id, attempts, retries = row["id"], row["attempts"], row["retries"]
        error = "attempt interrupted (the gateway stopped during transmission)"
        result = dumps(
            TxResultRecord.interrupted(error, row["pages"] or 0, now - row["created"]).as_dict()
        )
        await db.execute(
            "UPDATE attempts SET ended = ?, outcome = 'interrupted', failure_class = 'line',"
            " result = ? WHERE fax_id = ? AND outcome = 'running'",
            (now, result, fax_id),
        )
        exhausted = attempts >= retries
        await db.execute(
            "UPDATE faxes SET status = ?, error = ?, tx_result = ?, next_attempt_at = ?,"
            " lease_owner = NULL, lease_expires = NULL, modified = ? WHERE id = ?",
            (
                "failed" if exhausted else "pending",
                error,
                result,
                None if exhausted else now,
                now,
                fax_id,
            ),
        )
        if exhausted:
            await self._enqueue_notifications(db, fax_id, "outbound_failed")
        if exhausted and row["smtplog_id"]:
            await append_smtplog_error(db, row["smtplog_id"], f"fax {fax_id}: {error}")

    async def _fail_reception(self, db: aiosqlite.Connection, fax_id: str, now: float) -> None:
        text = "reception interrupted (the gateway stopped during reception)"
        rx = {"success": False, "result_text": text, "total_pages": 0, "pages_received": 0}
        await db.execute(
            "UPDATE faxes SET status = 'failed', rx_result = ?, error = ?, pages = 0,"
            " lease_owner = NULL, lease_expires = NULL, modified = ? WHERE id = ?",
            (dumps(rx), text, now, fax_id),
        )
        await self._enqueue_notifications(db, fax_id, "inbound_failed")

    async def fax_attempts(self, fax_id: str) -> list[dict[str, Any]]:
        rows = await self.database.fetchall(
            "SELECT number, started, ended, outcome, failure_class, result FROM attempts"
            " WHERE fax_id = ? ORDER BY id",
            (fax_id,),
        )
        return [
            {
                "attempt": r["number"],
                "started": r["started"],
                "ended": r["ended"],
                "outcome": r["outcome"],
                "failure_class": r["failure_class"],
                "result": loads_or_none(r["result"]),
            }
            for r in rows
        ]

    async def next_due_at(self) -> float | None:
        row = await self.database.fetchone(
            "SELECT min(next_attempt_at) FROM faxes WHERE status = 'pending'"
        )
        return None if row is None or row[0] is None else float(row[0])

    async def next_lease_expiry(self) -> float | None:
        """When the earliest lease of a transmission or reception runs out (for the reaper)."""
        row = await self.database.fetchone(
            "SELECT min(lease_expires) FROM faxes WHERE status = 'processing'"
        )
        return None if row is None or row[0] is None else float(row[0])

    # -- inbound -------------------------------------------------------------------------------

    async def begin_inbound(
        self,
        faxbox: Faxbox,
        caller: str | None,
        tsi: str | None,
        owner: str | None = None,
        lease_s: float | None = None,
    ) -> str:
        """An inbound fax starts being received: it shows in ``incoming``.

        With ``owner``, the reception is held under a lease like a transmission, so that a
        crash mid-call cannot leave it in ``incoming`` for ever (see ``recover_expired``).
        """
        fax_id = credentials.new_id()
        now = self.clock()
        expires = now + lease_s if owner is not None and lease_s is not None else None
        async with self.database.transaction() as db:
            await db.execute(
                "INSERT INTO faxes (id, account_id, faxbox_id, direction, status, from_number,"
                " to_number, fax_identity_number, fax_timezone, retries, source, notifications,"
                " render_options, created, modified, lease_owner, lease_expires)"
                " VALUES (?, ?, ?, 'inbound', 'processing',"
                " ?, ?, ?, ?, 1, 'line', ?, '{}', ?, ?, ?, ?)",
                (
                    fax_id,
                    faxbox.account_id,
                    faxbox.id,
                    caller,
                    faxbox.fax_number or "",
                    tsi,
                    faxbox.fax_timezone,
                    # The owner gets received faxes too, as in Kazoo, besides the faxbox's list.
                    dumps(
                        {
                            "email": {
                                "send_to": dedupe_addresses(
                                    [faxbox.owner_email, *faxbox.inbound_notify]
                                )
                            }
                        }
                    ),
                    now,
                    now,
                    owner if expires is not None else None,
                    expires,
                ),
            )
        return fax_id

    async def finish_inbound(
        self,
        fax_id: str,
        rx_result: dict[str, Any],
        tiff: bytes | None,
        pdf: bytes | None,
        pages: int,
    ) -> bool:
        """Reception ended: ``inbox`` with ``rx_result`` and, if pages arrived, the image.
        False if the reception had already been ended (taken back after a lost lease)."""
        now = self.clock()
        status = FaxStatus.COMPLETED if rx_result.get("success") else FaxStatus.FAILED
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET status = ?, rx_result = ?, pages = ?, fax_identity_number ="
                " COALESCE(?, fax_identity_number), error = ?, modified = ?, delivered = ?,"
                " lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND direction = 'inbound' AND status = 'processing'",
                (
                    status.value,
                    dumps(rx_result),
                    pages,
                    rx_result.get("remote_tsi"),
                    None if status is FaxStatus.COMPLETED else rx_result.get("result_text"),
                    now,
                    now if status is FaxStatus.COMPLETED else None,
                    fax_id,
                ),
            )
            if cur.rowcount != 1:
                return False
            for role, data in (("tiff", tiff), ("pdf", pdf)):
                if data:
                    doc = SourceDocument(
                        kind=DocumentKind.TIFF if role == "tiff" else DocumentKind.PDF,
                        data=data,
                        filename=f"{fax_id}.{role}",
                        pages=pages,
                    )
                    await self._link_new_document(db, fax_id, role, 0, doc)
            event = "inbound_received" if status is FaxStatus.COMPLETED else "inbound_failed"
            await self._enqueue_notifications(db, fax_id, event)
        return True

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.database.fetchall("SELECT status, count(*) FROM faxes GROUP BY status")
        return {r[0]: int(r[1]) for r in rows}


async def _release_renders(
    db: aiosqlite.Connection, owner: str, fax_id: str | None, retry_at: float | None
) -> int:
    one = "" if fax_id is None else " AND id = ?"
    cur = await db.execute(
        "UPDATE faxes SET lease_owner = NULL, lease_expires = ?"
        f" WHERE status = 'attaching_files' AND lease_owner = ?{one}",
        (retry_at, owner, *given(fax_id)),
    )
    return int(cur.rowcount)


async def _all(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> list[aiosqlite.Row]:
    async with db.execute(sql, params) as cur:
        return list(await cur.fetchall())


# Due outbound jobs that may start now: numbers with an active transmission are skipped, one job
# per number is taken (the oldest), and each account's jobs are numbered after the ones it
# already has running ("slot"), so that ORDER BY slot lets accounts take turns.
_DUE_SQL = """
WITH active AS (
    SELECT account_id, to_number FROM faxes
    WHERE status = 'processing' AND direction = 'outbound'
),
due AS (
    SELECT id, account_id, next_attempt_at, created,
        ROW_NUMBER() OVER (
            PARTITION BY to_number ORDER BY next_attempt_at, created, id
        ) AS nth_for_number
    FROM faxes
    WHERE status = 'pending' AND direction = 'outbound' AND next_attempt_at <= ?
        AND to_number NOT IN (SELECT to_number FROM active)
),
ranked AS (
    SELECT id, next_attempt_at, created,
        ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY next_attempt_at, created, id)
        + (SELECT count(*) FROM active WHERE active.account_id = due.account_id) AS slot
    FROM due
    WHERE nth_for_number = 1
)
SELECT id FROM ranked WHERE slot <= ? ORDER BY slot, next_attempt_at, created, id LIMIT ?
"""
