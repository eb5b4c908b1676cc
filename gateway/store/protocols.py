"""The store as the rest of the gateway sees it: one protocol per role, and ``Store`` for all.

Each caller asks for the narrowest role it uses (the SMTP edge an ``IntakeStore``, the worker
a ``JobQueue``, ...); the daemon holds a ``Store`` and hands it to each. Two implementations
stand beside each other: ``SqliteStore`` (embedded, one node) and ``PostgresStore`` (several
nodes on one database). Guarantees every implementation keeps, whatever its SQL:

- a method returns only after what it changed is committed (``accept_message``'s SMTP 250 and
  ``create_fax``'s HTTP 201 rely on it);
- a lease (owner, expiry) guards every change of a claimed job or notification: a holder that
  lost its lease gets False and changes nothing;
- ``claim_due`` never lets two active transmissions go to one number, nor more than
  ``max_per_account`` run for one account, counted over every node sharing the database;
- a ``*_of_account``/``account_id`` argument confines a read or change to that account
  (``NotFoundError`` for another account's row, never its data).

Records that cross the interface are in ``gateway.store.records`` and ``gateway.models``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.models import (
    Account,
    Direction,
    Fax,
    Faxbox,
    NewFax,
    Notification,
    SmtpLogEntry,
    SourceDocument,
)
from gateway.store.records import (
    AttemptOutcome,
    Claim,
    PurgeResult,
    QueueStats,
    TxResultRecord,
    Window,
)


class Clocked(Protocol):
    @property
    def clock(self) -> Callable[[], float]:
        """The store's clock (Unix seconds): callers compute due times on the same one."""
        ...


class LeaseRenewal(Clocked, Protocol):
    """Whoever holds a job's lease keeps it while the work goes on (render, call, reception)."""

    async def renew_lease(self, fax_id: str, owner: str, lease_s: float) -> bool:
        """Extend ``owner``'s lease by ``lease_s`` from now; False if the lease was lost."""
        ...


class FaxReader(Clocked, Protocol):
    """Reading one fax and what belongs to it (every role that acts on a fax)."""

    async def get_fax(self, fax_id: str, account_id: str | None = None) -> Fax: ...

    async def fax_documents(self, fax_id: str, role: str = "original") -> list[SourceDocument]:
        """The fax's documents of ``role`` (original, tiff, pdf) in order, bytes included."""
        ...

    async def get_faxbox(self, faxbox_id: str, account_id: str | None = None) -> Faxbox: ...


class IntakeStore(FaxReader, Protocol):
    """The SMTP edge: route a message to faxboxes, authenticate, accept or refuse it."""

    async def faxbox_by_domain(self, domain: str) -> Faxbox | None: ...

    async def faxbox_by_login(self, login: str) -> Faxbox | None: ...

    async def faxbox_password_hash(self, faxbox_id: str) -> str | None: ...

    async def faxboxes_of_account(self, account_id: str) -> list[Faxbox]: ...

    async def account_by_realm(self, realm: str) -> Account | None: ...

    async def find_recent_fax(
        self,
        message_id: str,
        faxbox_id: str | None,
        to_number: str,
        message_digest: str,
        since: float,
    ) -> str | None:
        """The job made since ``since`` from the same message to the same number through the
        same faxbox (an SMTP retry of a message already accepted), if any."""
        ...

    async def accept_message(
        self,
        entry: SmtpLogEntry,
        faxes: Sequence[tuple[str, NewFax]],
        documents: Sequence[SourceDocument],
        message_digest: str | None = None,
        duplicate_since: float | None = None,
    ) -> None:
        """The jobs (id, fax), their documents and the smtplog row, in one commit.

        With ``message_digest``, a job of the same message (Message-ID, faxbox, number and
        digest, as ``find_recent_fax``) made since ``duplicate_since`` (``None``: ever) is
        not made again: the smtplog row names that job. The caller has looked already; this
        covers a retry of the message committed meanwhile (by another node)."""
        ...

    async def write_smtplog(self, entry: SmtpLogEntry) -> None:
        """The smtplog row of a transaction that made no job (refused, or nothing to send)."""
        ...

    async def append_smtplog_error(self, smtplog_id: str, error: str) -> None: ...


class AuthStore(Protocol):
    """API and console sign-in: tokens and the accounts they belong to."""

    async def account_for_token(self, token: str, kind: str = "auth_token") -> Account | None: ...

    async def get_account(self, account_id: str) -> Account: ...

    async def issue_auth_token(
        self, account_id: str, *, ttl_s: float | None = None, keep: int | None = None
    ) -> str: ...


class FaxboxStore(Protocol):
    """Faxboxes as the API (and the CLI) create and change them, always within one account."""

    async def create_faxbox(
        self, faxbox: Faxbox, default_smtp_domain: str, smtp_password: str | None = None
    ) -> Faxbox: ...

    async def get_faxbox(self, faxbox_id: str, account_id: str | None = None) -> Faxbox: ...

    async def faxboxes_of_account(self, account_id: str) -> list[Faxbox]: ...

    async def smtp_address_taken(
        self, address: str, except_faxbox_id: str | None = None
    ) -> bool: ...

    async def update_faxbox(self, faxbox: Faxbox, password_hash: str | None = None) -> Faxbox: ...

    async def clear_faxbox_password(self, faxbox_id: str, account_id: str) -> None: ...

    async def delete_faxbox(self, faxbox_id: str, account_id: str) -> Faxbox: ...


class FaxListing(FaxReader, Protocol):
    """The faxes API: folder lists, the smtplog, one fax with its attempts and notifications,
    its renditions, new jobs, copies and deletes."""

    async def list_faxes(
        self,
        account_id: str,
        direction: Direction,
        final: bool,
        window: Window,
        filters: Mapping[str, str] | None = None,
    ) -> list[Fax]:
        """One folder's rows (``final``: outbox/inbox, else outgoing/incoming) in the window;
        ``filters`` name row fields (``FAX_FILTERS``); an unknown field matches nothing."""
        ...

    async def list_smtplog(self, account_id: str | None, window: Window) -> list[SmtpLogEntry]: ...

    async def get_smtplog(self, entry_id: str, account_id: str | None = None) -> SmtpLogEntry: ...

    async def fax_document(self, fax_id: str, role: str) -> SourceDocument | None: ...

    async def fax_attempts(self, fax_id: str) -> list[dict[str, Any]]: ...

    async def fax_notifications(self, fax_id: str) -> list[dict[str, Any]]: ...

    async def create_fax(
        self, fax: NewFax, documents: Sequence[SourceDocument] = (), fax_id: str | None = None
    ) -> str: ...

    async def create_fax_copy(self, fax: NewFax, source_id: str, role: str | None) -> str: ...

    async def delete_fax(self, fax_id: str, account_id: str) -> Fax: ...

    async def erase_fax_documents(self, fax_id: str, account_id: str) -> Fax: ...


class RenderQueue(FaxReader, LeaseRenewal, Protocol):
    """The render stage: jobs in ``attaching_files`` claimed under a lease, made due."""

    async def claim_attaching(self, owner: str, lease_s: float, limit: int) -> list[Fax]: ...

    async def store_originals(
        self, fax_id: str, owner: str, documents: Sequence[SourceDocument]
    ) -> bool: ...

    async def finish_render(
        self, fax_id: str, owner: str, tiff: bytes, pdf: bytes, pages: int
    ) -> bool: ...

    async def fail_job(
        self, fax_id: str, error: str, tx_result: TxResultRecord, owner: str | None = None
    ) -> bool:
        """A permanent failure before or during sending (``owner`` None: whoever holds it)."""
        ...

    async def release_renders(
        self, owner: str, fax_id: str | None = None, retry_at: float | None = None
    ) -> int: ...

    async def count_render_crash(self, fax_id: str, owner: str, limit: int) -> int | None: ...


class JobQueue(FaxReader, LeaseRenewal, Protocol):
    """The worker: due jobs claimed under a lease, one attempt each, recorded atomically."""

    async def claim_due(
        self, owner: str, lease_s: float, max_per_account: int, limit: int
    ) -> list[Claim]: ...

    async def finish_attempt(
        self, claim: Claim, owner: str, outcome: AttemptOutcome, next_attempt_at: float | None
    ) -> bool: ...

    async def recover_expired(self) -> int: ...

    async def release_leases(self, owner: str) -> int: ...

    async def next_due_at(self) -> float | None: ...

    async def next_lease_expiry(self) -> float | None: ...


class InboundStore(LeaseRenewal, Protocol):
    """The inbound line: a reception held under a lease until it lands in the inbox."""

    async def faxbox_by_fax_number(self, number: str) -> Faxbox | None: ...

    async def begin_inbound(
        self,
        faxbox: Faxbox,
        caller: str | None,
        tsi: str | None,
        owner: str | None = None,
        lease_s: float | None = None,
    ) -> str: ...

    async def finish_inbound(
        self,
        fax_id: str,
        rx_result: dict[str, Any],
        tiff: bytes | None,
        pdf: bytes | None,
        pages: int,
    ) -> bool: ...


class NotificationQueue(FaxReader, Protocol):
    """The notifier: notification rows claimed under a lease, sent, retried or dead."""

    async def claim_notifications(
        self, owner: str, lease_s: float, limit: int
    ) -> list[Notification]: ...

    async def notification_sent(self, notification_id: int, owner: str) -> bool: ...

    async def notification_failed(
        self, notification_id: int, owner: str, error: str, retry_at: float | None
    ) -> bool: ...

    async def next_notification_due(self) -> float | None: ...

    async def notifications_of_fax(self, fax_id: str) -> list[Notification]: ...


class AdminStore(FaxReader, Protocol):
    """Operators: accounts, the CLI's reading, retry and cancel, retention, backup, metrics and
    health."""

    async def create_account(
        self, name: str, realm: str | None = None
    ) -> tuple[Account, str, str]: ...

    async def count_accounts(self) -> int: ...

    async def recent_faxes(self, account_id: str | None, limit: int) -> list[Fax]: ...

    async def recent_smtplog(self, account_id: str | None, limit: int) -> list[SmtpLogEntry]: ...

    async def fax_attempts(self, fax_id: str) -> list[dict[str, Any]]: ...

    async def fax_notifications(self, fax_id: str) -> list[dict[str, Any]]: ...

    async def retry_fax(self, fax_id: str, more_attempts: int) -> Fax: ...

    async def cancel_fax(self, fax_id: str) -> Fax: ...

    async def count_by_status(self) -> dict[str, int]: ...

    async def queue_stats(self) -> QueueStats: ...

    async def purge(
        self,
        documents_before: float | None,
        faxes_before: float | None,
        smtplog_before: float | None,
    ) -> PurgeResult:
        """Purge finished faxes, their documents and smtplog rows older than each cutoff."""
        ...

    async def backup(self, target: Path) -> dict[str, Any]:
        """A consistent copy of the live store (SQLite: a checked file; PostgreSQL: pg_dump)."""
        ...

    async def writer_health(self, wait_s: float = 1.0) -> str | None:
        """None if the store can write, else why not ("closed", "busy", ...), for /health."""
        ...


class Store(
    IntakeStore,
    AuthStore,
    FaxboxStore,
    FaxListing,
    RenderQueue,
    JobQueue,
    InboundStore,
    NotificationQueue,
    AdminStore,
    Protocol,
):
    """Every role, and the lifecycle: what the daemon opens, hands out and closes."""

    async def open(self) -> None:
        """Connect (and, for SQLite, migrate); StorageError if the store cannot be used."""
        ...

    async def close(self) -> None: ...
