"""The typed records that cross the store interface, whichever backend holds the rows.

Nothing here knows SQL: both ``SqliteStore`` and ``PostgresStore`` take and give these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.models import Fax


@dataclass(frozen=True)
class TxResultRecord:
    """One attempt's ``tx_result``, as stored on the attempt and on the fax: Kazoo's schema
    keys with real values, plus ``result_code``, ``result_text`` and ``total_pages`` that
    clients read, and our ``failure_class``. Built from a call (the worker), for a job that
    never reached the line (``unsent``), or for an attempt a crash cut short (``interrupted``).
    """

    success: bool
    error_message: str | None
    result_code: int | None  # T.30 completion code; None when no call was made
    result_text: str
    pages_sent: int
    total_pages: int
    fax_speed: int
    fax_error_correction: bool
    fax_receiver_id: str | None
    fax_bad_rows: int
    time_elapsed: int  # whole seconds since the job was created
    failure_class: str | None
    line_seconds: float | None = None  # only for attempts that made a call
    sip_code: int | None = None
    media: str | None = None

    @classmethod
    def unsent(cls, error: str, result_text: str, elapsed: float = 0.0) -> TxResultRecord:
        """A job that ended before any call (bad document, cancelled): a permanent failure."""
        return cls._no_line(error, result_text, 0, elapsed, "permanent")

    @classmethod
    def interrupted(cls, error: str, pages: int, elapsed: float) -> TxResultRecord:
        """An attempt cut short by a crash: nothing confirmed, a line failure (retried)."""
        return cls._no_line(error, "interrupted", pages, elapsed, "line")

    @classmethod
    def _no_line(
        cls, error: str, result_text: str, pages: int, elapsed: float, failure_class: str
    ) -> TxResultRecord:
        return cls(
            success=False,
            error_message=error,
            result_code=None,
            result_text=result_text,
            pages_sent=0,
            total_pages=pages,
            fax_speed=0,
            fax_error_correction=False,
            fax_receiver_id=None,
            fax_bad_rows=0,
            time_elapsed=round(max(0.0, elapsed)),
            failure_class=failure_class,
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON object stored and shown; optional figures appear only when known."""
        data: dict[str, Any] = {
            "success": self.success,
            "error_message": self.error_message,
            "result_code": self.result_code,
            "result_text": self.result_text,
            "pages_sent": self.pages_sent,
            "total_pages": self.total_pages,
            "fax_speed": self.fax_speed,
            "fax_error_correction": self.fax_error_correction,
            "fax_receiver_id": self.fax_receiver_id,
            "fax_bad_rows": self.fax_bad_rows,
            "time_elapsed": self.time_elapsed,
            "failure_class": self.failure_class,
        }
        if self.line_seconds is not None:
            data["line_seconds"] = self.line_seconds
        if self.sip_code is not None:
            data["sip_code"] = self.sip_code
        if self.media is not None:
            data["media"] = self.media
        return data


@dataclass(frozen=True)
class Claim:
    """A job claimed for one transmission attempt."""

    fax: Fax
    attempt: int  # 1-based number of this attempt (the count ``retries`` is compared with)
    attempt_id: int | None = None  # the attempts row of this attempt


@dataclass(frozen=True)
class AttemptOutcome:
    outcome: str  # "completed", "failed", "retry"
    failure_class: str | None
    tx_result: TxResultRecord


@dataclass(frozen=True)
class Window:
    """Which rows of a time-ordered list to read.

    ``start`` is the (created, id) of the first row to include: a page starts where the previous
    one's extra row was, so rows created meanwhile never shift a page (keyset, not OFFSET).
    """

    created_from: float  # Unix seconds, inclusive
    created_to: float  # Unix seconds, exclusive
    start: tuple[float, str] | None = None
    ascending: bool = False
    limit: int | None = None


@dataclass
class QueueStats:
    faxes: dict[tuple[str, str], int] = field(default_factory=dict)  # (direction, status) -> n
    due: int = 0  # outbound jobs pending and due now: waiting for a free line
    oldest_unfinished: float | None = None  # created, of the oldest outbound job not finished
    notification_backlog: int | None = None  # None: this store cannot tell


@dataclass
class PurgeResult:
    documents: int = 0  # document blobs deleted
    document_bytes: int = 0
    faxes_stripped: int = 0  # faxes whose documents went (the record stays)
    faxes: int = 0  # fax records deleted
    smtplog: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "documents": self.documents,
            "document_bytes": self.document_bytes,
            "faxes_stripped": self.faxes_stripped,
            "faxes": self.faxes,
            "smtplog": self.smtplog,
        }
