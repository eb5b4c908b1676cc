"""Store operations for notifications: one row per (fax, event, channel, recipient).

Rows are written inside the transaction that makes a fax final, so an outcome is never
recorded without its notifications, nor a notification without its outcome. A sender task
claims due rows under a lease (like the job engine), then marks each sent, due again later, or
dead. A sender that dies mid-delivery leaves a lease that expires; the row is claimed again, so
delivery is at least once (the email's Message-ID stays the same, so a receiver can dedupe).
"""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from gateway.models import (
    Direction,
    FaxStatus,
    Notification,
    NotificationEvent,
    NotificationState,
)
from gateway.store.base import StoreBase, claim_rows

CHANNELS = ("email", "sms")
# An API client chooses its fax's recipients: bound them, so a job cannot become a mailing list.
MAX_RECIPIENTS_PER_CHANNEL = 25


def recipients_of(notifications: dict[str, Any], direction: Direction, channel: str) -> list[str]:
    """``<direction>.<channel>.send_to`` if present, else ``<channel>.send_to`` (Kazoo's order).

    ``send_to`` may be a list or a single string. Duplicates go (emails case-insensitively).
    """
    scoped = notifications.get(direction.value)
    prefs = scoped.get(channel) if isinstance(scoped, dict) else None
    if not isinstance(prefs, dict):
        prefs = notifications.get(channel)
    send_to = prefs.get("send_to") if isinstance(prefs, dict) else None
    if isinstance(send_to, str):
        send_to = [send_to]
    if not isinstance(send_to, list):
        return []
    seen: set[str] = set()
    found: list[str] = []
    for value in send_to:
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        key = value.lower() if channel == "email" else value
        if key not in seen:
            seen.add(key)
            found.append(value)
    return found[:MAX_RECIPIENTS_PER_CHANNEL]


def event_of(direction: Direction, status: FaxStatus) -> NotificationEvent | None:
    """The event a fax in this final state notifies; None while it is not final."""
    if status is FaxStatus.COMPLETED:
        return (
            NotificationEvent.OUTBOUND_COMPLETED
            if direction is Direction.OUTBOUND
            else NotificationEvent.INBOUND_RECEIVED
        )
    if status is FaxStatus.FAILED:
        return (
            NotificationEvent.OUTBOUND_FAILED
            if direction is Direction.OUTBOUND
            else NotificationEvent.INBOUND_FAILED
        )
    return None


def notification_from_row(row: aiosqlite.Row) -> Notification:
    return Notification(
        id=row["id"],
        fax_id=row["fax_id"],
        event=NotificationEvent(row["event"]),
        channel=row["channel"],
        recipient=row["recipient"],
        state=NotificationState(row["state"]),
        attempts=row["attempts"],
        created=row["created"],
        next_attempt_at=row["next_attempt_at"],
        sent=row["sent"],
        error=row["error"],
    )


class NotificationStore(StoreBase):
    async def _enqueue_notifications(
        self, db: aiosqlite.Connection, fax_id: str, event: NotificationEvent | str
    ) -> int:
        """Queue the notifications of ``event`` for the fax's recipients, in the caller's
        open transaction (so they commit, or roll back, with the state change); the count."""
        event = NotificationEvent(event)
        async with db.execute(
            "SELECT direction, status, notifications, EXISTS (SELECT 1 FROM notifications n"
            " WHERE n.fax_id = faxes.id AND n.event = ?) AS queued FROM faxes WHERE id = ?",
            (event.value, fax_id),
        ) as cur:
            row = await cur.fetchone()
        # Callers guard their own state changes; this makes a stray second call harmless too:
        # an event is queued once per fax, and only if it is the fax's state in this transaction.
        if row is None or row["queued"]:
            return 0
        direction = Direction(row["direction"])
        if event_of(direction, FaxStatus(row["status"])) is not event:
            return 0
        try:
            prefs = json.loads(row["notifications"])
        except ValueError:
            prefs = None
        if not isinstance(prefs, dict):
            return 0
        now = self.clock()
        count = 0
        for channel in CHANNELS:
            for recipient in recipients_of(prefs, direction, channel):
                await db.execute(
                    "INSERT INTO notifications (fax_id, event, channel, recipient, state,"
                    " created, next_attempt_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (fax_id, event.value, channel, recipient, now, now),
                )
                count += 1
        return count

    async def claim_notifications(
        self, owner: str, lease_s: float, limit: int
    ) -> list[Notification]:
        """Claim due rows, and rows whose sender's lease expired; each claim counts an attempt."""
        now = self.clock()
        async with self.database.transaction() as db:
            rows = await claim_rows(
                db,
                "notifications",
                owner,
                now + lease_s,
                "(state = 'pending' AND next_attempt_at <= ?)"
                " OR (state = 'sending' AND lease_expires < ?)",
                (now, now),
                "next_attempt_at, id",
                limit,
                also_set="state = 'sending', attempts = attempts + 1, ",
            )
        return sorted((notification_from_row(r) for r in rows), key=lambda n: n.id)

    async def notification_sent(self, notification_id: int, owner: str) -> bool:
        now = self.clock()
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE notifications SET state = 'sent', sent = ?, next_attempt_at = NULL,"
                " error = NULL, lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND state = 'sending' AND lease_owner = ?",
                (now, notification_id, owner),
            )
            return cur.rowcount == 1

    async def notification_failed(
        self, notification_id: int, owner: str, error: str, retry_at: float | None
    ) -> bool:
        """Due again at ``retry_at`` with the error kept for the API, or dead if it is None."""
        async with self.database.transaction() as db:
            cur = await db.execute(
                "UPDATE notifications SET state = ?, next_attempt_at = ?, error = ?,"
                " lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND state = 'sending' AND lease_owner = ?",
                (
                    (
                        NotificationState.PENDING
                        if retry_at is not None
                        else NotificationState.DEAD
                    ).value,
                    retry_at,
                    error[:1000],
                    notification_id,
                    owner,
                ),
            )
            return cur.rowcount == 1

    async def next_notification_due(self) -> float | None:
        row = await self.database.fetchone(
            "SELECT min(next_attempt_at) FROM notifications WHERE state = 'pending'"
        )
        return None if row is None or row[0] is None else float(row[0])

    async def notifications_of_fax(self, fax_id: str) -> list[Notification]:
        rows = await self.database.fetchall(
            "SELECT * FROM notifications WHERE fax_id = ? ORDER BY id", (fax_id,)
        )
        return [notification_from_row(r) for r in rows]

    async def fax_notifications(self, fax_id: str) -> list[dict[str, Any]]:
        """The fax's notifications as plain dicts, oldest first (times in Unix seconds)."""
        return [
            {
                "id": n.id,
                "event": n.event.value,
                "channel": n.channel,
                "to": n.recipient,
                "state": n.state.value,
                "attempts": n.attempts,
                "created": n.created,
                "next_attempt_at": n.next_attempt_at,
                "sent": n.sent,
                "error": n.error,
            }
            for n in await self.notifications_of_fax(fax_id)
        ]
