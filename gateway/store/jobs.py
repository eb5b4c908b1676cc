"""The job engine's store operations: leases for rendering and sending, attempts, inbound faxes.

A lease (owner, expiry) is how a job is claimed: whoever holds an unexpired lease may move the
job on, and every state change checks the lease in its WHERE clause, so a worker that lost its
lease (it was too slow, or the daemon restarted) can never overwrite a newer decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from gateway import credentials
from gateway.models import DocumentKind, Fax, Faxbox, FaxStatus, SourceDocument
from gateway.store.base import StoreBase
from gateway.store.rows import dumps, fax_from_row, loads_or_none


@dataclass(frozen=True)
class Claim:
    """A job claimed for one transmission attempt."""

    fax: Fax
    attempt: int  # 1-based number of this attempt


@dataclass(frozen=True)
class AttemptOutcome:
    outcome: str  # "completed", "failed", "retry"
    failure_class: str | None
    tx_result: dict[str, Any]


class JobStore(StoreBase):
    # -- rendering -----------------------------------------------------------------------------

    async def claim_attaching(self, owner: str, lease_s: float, limit: int) -> list[Fax]:
        now = self.clock()
        async with self.db.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET lease_owner = ?, lease_expires = ? WHERE id IN ("
                " SELECT id FROM faxes WHERE status = 'attaching_files'"
                " AND (lease_expires IS NULL OR lease_expires < ?) ORDER BY created LIMIT ?)"
                " RETURNING *",
                (owner, now + lease_s, now, limit),
            )
            rows = await cur.fetchall()
        return sorted((fax_from_row(r) for r in rows), key=lambda f: f.created)

    async def store_originals(
        self, fax_id: str, owner: str, documents: Sequence[SourceDocument]
    ) -> None:
        """Keep a fetched document (``document.url``) as the job's original."""
        async with self.db.transaction() as db:
            for seq, doc in enumerate(documents):
                await self._link_new_document(db, fax_id, "original", seq, doc)

    async def finish_render(
        self, fax_id: str, owner: str, tiff: bytes, pdf: bytes, pages: int
    ) -> bool:
        """Store the fax image and its PDF and make the job due; False if the lease was lost."""
        now = self.clock()
        async with self.db.transaction() as db:
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
        self, fax_id: str, error: str, tx_result: dict[str, Any], owner: str | None = None
    ) -> bool:
        """A permanent failure before or during sending: ``failed`` with the reason."""
        now = self.clock()
        async with self.db.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET status = 'failed', error = ?, tx_result = ?, modified = ?,"
                " lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND status NOT IN ('completed', 'failed')"
                " AND (? IS NULL OR lease_owner = ?) RETURNING smtplog_id",
                (error, dumps(tx_result), now, fax_id, owner, owner),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            if row["smtplog_id"]:
                # The admin reading the smtplog sees why the message it accepted never went out.
                await db.execute(
                    "UPDATE smtplog SET errors = json_insert(errors, '$[#]', ?) WHERE id = ?",
                    (f"fax {fax_id}: {error}", row["smtplog_id"]),
                )
        return True

    # -- sending -------------------------------------------------------------------------------

    async def claim_due(
        self, owner: str, lease_s: float, max_per_account: int, limit: int
    ) -> list[Claim]:
        """Claim due jobs: one active transmission per number, ``max_per_account`` per account."""
        now = self.clock()
        claims: list[Claim] = []
        async with self.db.transaction() as db:
            busy_numbers = {
                r[0]
                for r in await _all(
                    db, "SELECT to_number FROM faxes WHERE status = 'processing'", ()
                )
            }
            active: dict[str, int] = {
                r[0]: r[1]
                for r in await _all(
                    db,
                    "SELECT account_id, count(*) FROM faxes WHERE status = 'processing'"
                    " GROUP BY account_id",
                    (),
                )
            }
            candidates = await _all(
                db,
                "SELECT * FROM faxes WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, created LIMIT ?",
                (now, max(limit * 20, 100)),
            )
            for row in candidates:
                if len(claims) >= limit:
                    break
                account, number = row["account_id"], row["to_number"]
                if number in busy_numbers or active.get(account, 0) >= max_per_account:
                    continue
                attempt = row["attempts"] + 1
                cur = await db.execute(
                    "UPDATE faxes SET status = 'processing', attempts = ?, lease_owner = ?,"
                    " lease_expires = ?, modified = ? WHERE id = ? AND status = 'pending'"
                    " RETURNING *",
                    (attempt, owner, now + lease_s, now, row["id"]),
                )
                updated = await cur.fetchone()
                assert updated is not None
                await db.execute(
                    "INSERT INTO attempts (fax_id, number, started, outcome, lease_owner)"
                    " VALUES (?, ?, ?, 'running', ?)",
                    (row["id"], attempt, now, owner),
                )
                busy_numbers.add(number)
                active[account] = active.get(account, 0) + 1
                claims.append(Claim(fax_from_row(updated), attempt))
        return claims

    async def renew_lease(self, fax_id: str, owner: str, lease_s: float) -> bool:
        async with self.db.transaction() as db:
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
        error = None if status is FaxStatus.COMPLETED else outcome.tx_result.get("error_message")
        async with self.db.transaction() as db:
            cur = await db.execute(
                "UPDATE faxes SET status = ?, tx_result = ?, error = ?, modified = ?,"
                " delivered = ?, next_attempt_at = ?, lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND status = 'processing' AND lease_owner = ? RETURNING smtplog_id",
                (
                    status.value,
                    dumps(outcome.tx_result),
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
                " WHERE fax_id = ? AND number = ?",
                (
                    now,
                    outcome.outcome,
                    outcome.failure_class,
                    dumps(outcome.tx_result),
                    claim.fax.id,
                    claim.attempt,
                ),
            )
            if status is FaxStatus.FAILED and row["smtplog_id"]:
                await db.execute(
                    "UPDATE smtplog SET errors = json_insert(errors, '$[#]', ?) WHERE id = ?",
                    (f"fax {claim.fax.id}: {error}", row["smtplog_id"]),
                )
        return True

    async def recover_expired(self) -> int:
        """Take back jobs whose lease expired (a crashed or killed worker).

        The interrupted attempt keeps its row, marked ``interrupted``, and counts once; the job
        is retried at once if attempts remain, else it fails.
        """
        now = self.clock()
        async with self.db.transaction() as db:
            expired = await _all(
                db,
                "SELECT id, attempts, retries FROM faxes WHERE status = 'processing'"
                " AND direction = 'outbound' AND lease_expires < ?",
                (now,),
            )
            for row in expired:
                await self._interrupt(db, row["id"], row["attempts"], row["retries"], now)
        return len(expired)

    async def release_leases(self, owner: str) -> int:
        """Graceful stop: hand running jobs back; the cut-short attempt does not count."""
        now = self.clock()
        async with self.db.transaction() as db:
            rows = await _all(
                db,
                "SELECT id, attempts FROM faxes WHERE status = 'processing' AND lease_owner = ?",
                (owner,),
            )
            for row in rows:
                await db.execute(
                    "UPDATE attempts SET ended = ?, outcome = 'released' WHERE fax_id = ?"
                    " AND number = ? AND outcome = 'running'",
                    (now, row["id"], row["attempts"]),
                )
                await db.execute(
                    "UPDATE faxes SET status = 'pending', attempts = attempts - 1,"
                    " next_attempt_at = ?, lease_owner = NULL, lease_expires = NULL, modified = ?"
                    " WHERE id = ?",
                    (now, now, row["id"]),
                )
            await db.execute(
                "UPDATE faxes SET lease_owner = NULL, lease_expires = NULL"
                " WHERE status = 'attaching_files' AND lease_owner = ?",
                (owner,),
            )
        return len(rows)

    async def _interrupt(
        self, db: aiosqlite.Connection, fax_id: str, attempts: int, retries: int, now: float
    ) -> None:
        error = "attempt interrupted (the gateway stopped during transmission)"
        result = {"success": False, "error_message": error, "result_text": "interrupted"}
        await db.execute(
            "UPDATE attempts SET ended = ?, outcome = 'interrupted', failure_class = 'line',"
            " result = ? WHERE fax_id = ? AND number = ? AND outcome = 'running'",
            (now, dumps(result), fax_id, attempts),
        )
        exhausted = attempts >= retries
        await db.execute(
            "UPDATE faxes SET status = ?, error = ?, tx_result = COALESCE(tx_result, ?),"
            " next_attempt_at = ?, lease_owner = NULL, lease_expires = NULL, modified = ?"
            " WHERE id = ?",
            (
                "failed" if exhausted else "pending",
                error if exhausted else None,
                dumps(result),
                None if exhausted else now,
                now,
                fax_id,
            ),
        )

    async def fax_attempts(self, fax_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT number, started, ended, outcome, failure_class, result FROM attempts"
            " WHERE fax_id = ? ORDER BY number",
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
        row = await self.db.fetchone(
            "SELECT min(next_attempt_at) FROM faxes WHERE status = 'pending'"
        )
        return None if row is None or row[0] is None else float(row[0])

    # -- inbound -------------------------------------------------------------------------------

    async def begin_inbound(self, faxbox: Faxbox, caller: str | None, tsi: str | None) -> str:
        """An inbound fax starts being received: it shows in ``incoming``."""
        fax_id = credentials.new_id()
        now = self.clock()
        async with self.db.transaction() as db:
            await db.execute(
                "INSERT INTO faxes (id, account_id, faxbox_id, direction, status, from_number,"
                " to_number, fax_identity_number, fax_timezone, retries, source, notifications,"
                " render_options, created, modified) VALUES (?, ?, ?, 'inbound', 'processing',"
                " ?, ?, ?, ?, 1, 'line', ?, '{}', ?, ?)",
                (
                    fax_id,
                    faxbox.account_id,
                    faxbox.id,
                    caller,
                    faxbox.fax_number or "",
                    tsi,
                    faxbox.fax_timezone,
                    dumps({"email": {"send_to": list(faxbox.inbound_notify)}}),
                    now,
                    now,
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
    ) -> None:
        """Reception ended: ``inbox`` with ``rx_result`` and, if pages arrived, the image."""
        now = self.clock()
        status = FaxStatus.COMPLETED if rx_result.get("success") else FaxStatus.FAILED
        async with self.db.transaction() as db:
            await db.execute(
                "UPDATE faxes SET status = ?, rx_result = ?, pages = ?, fax_identity_number ="
                " COALESCE(?, fax_identity_number), error = ?, modified = ?, delivered = ?"
                " WHERE id = ? AND direction = 'inbound'",
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
            for role, data in (("tiff", tiff), ("pdf", pdf)):
                if data:
                    doc = SourceDocument(
                        kind=DocumentKind.TIFF if role == "tiff" else DocumentKind.PDF,
                        data=data,
                        filename=f"{fax_id}.{role}",
                        pages=pages,
                    )
                    await self._link_new_document(db, fax_id, role, 0, doc)

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT status, count(*) FROM faxes GROUP BY status")
        return {r[0]: int(r[1]) for r in rows}


async def _all(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> list[aiosqlite.Row]:
    async with db.execute(sql, params) as cur:
        return list(await cur.fetchall())
