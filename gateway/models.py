"""Domain records shared by every layer: plain frozen dataclasses and string enums.

Times are Unix seconds (float, UTC) everywhere inside the gateway; the HTTP edge converts them
to Kazoo's Gregorian seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class FaxStatus(StrEnum):
    ATTACHING_FILES = "attaching_files"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


FINAL_STATUSES = frozenset({FaxStatus.COMPLETED, FaxStatus.FAILED})


def folder_of(direction: Direction, status: FaxStatus) -> str:
    """Kazoo's folder names: outgoing/outbox for outbound, incoming/inbox for inbound."""
    finished = status in FINAL_STATUSES
    if direction is Direction.OUTBOUND:
        return "outbox" if finished else "outgoing"
    return "inbox" if finished else "incoming"


class DocumentKind(StrEnum):
    PDF = "pdf"
    TIFF = "tiff"
    PNG = "png"
    JPEG = "jpeg"
    GIF = "gif"
    TEXT = "text"


CONTENT_TYPES: dict[DocumentKind, str] = {
    DocumentKind.PDF: "application/pdf",
    DocumentKind.TIFF: "image/tiff",
    DocumentKind.PNG: "image/png",
    DocumentKind.JPEG: "image/jpeg",
    DocumentKind.GIF: "image/gif",
    DocumentKind.TEXT: "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class SourceDocument:
    """One document as the sender gave it; ``data`` of a TEXT document is UTF-8 text."""

    kind: DocumentKind
    data: bytes
    filename: str
    pages: int = 1

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.kind]


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    realm: str | None
    created: float


@dataclass(frozen=True)
class Faxbox:
    id: str
    account_id: str
    name: str
    smtp_email_address: str
    custom_smtp_email_address: str | None = None
    caller_id: str | None = None
    caller_name: str | None = None
    fax_header: str | None = None
    fax_identity: str | None = None
    fax_number: str | None = None
    owner_email: str | None = None
    smtp_permission_list: tuple[str, ...] = ()
    outbound_notify: tuple[str, ...] = ()
    inbound_notify: tuple[str, ...] = ()
    retries: int = 3
    default_region: str = "US"
    fax_timezone: str = "UTC"
    resolution: str = "fine"
    paper: str = "letter"
    cover_page: bool = False
    include_body: bool = False
    attach_pdf: bool = True
    has_smtp_password: bool = False
    created: float = 0.0
    modified: float = 0.0

    def render_defaults(self) -> dict[str, Any]:
        """How this faxbox's faxes are rendered (stored on each job as ``render_options``)."""
        return {
            "resolution": self.resolution,
            "paper": self.paper,
            "cover_page": self.cover_page,
            "attach_pdf": self.attach_pdf,
        }

    def new_fax(self, **fields: Any) -> NewFax:
        """A job sent through this faxbox: its defaults (caller id and name, TSI, header, time
        zone, retries, rendering), then ``fields`` on top. SMTP and HTTP intake share it."""
        defaults = NewFax(
            account_id=self.account_id,
            to_number="",
            faxbox_id=self.id,
            from_number=self.caller_id,
            from_name=self.caller_name,
            fax_identity_number=self.fax_identity,
            fax_identity_name=self.fax_header,
            fax_timezone=self.fax_timezone,
            retries=self.retries,
            render_options=self.render_defaults(),
        )
        return replace(defaults, **fields)


@dataclass(frozen=True)
class NewFax:
    """What intake (SMTP or HTTP) asks the store to create."""

    account_id: str
    to_number: str
    from_number: str | None = None
    faxbox_id: str | None = None
    from_name: str | None = None
    to_name: str | None = None
    original_number: str | None = None
    fax_identity_number: str | None = None
    fax_identity_name: str | None = None
    fax_timezone: str | None = None
    retries: int = 3
    message_id: str | None = None
    subject: str | None = None
    source: str = "smtp"
    notifications: dict[str, Any] = field(default_factory=dict)
    render_options: dict[str, Any] = field(default_factory=dict)
    document_request: dict[str, Any] | None = None


@dataclass(frozen=True)
class Fax:
    id: str
    account_id: str
    faxbox_id: str | None
    direction: Direction
    status: FaxStatus
    from_name: str | None
    from_number: str | None
    to_name: str | None
    to_number: str
    original_number: str | None
    fax_identity_number: str | None
    fax_identity_name: str | None
    fax_timezone: str | None
    retries: int
    attempts: int
    pages: int | None
    message_id: str | None
    subject: str | None
    source: str
    notifications: dict[str, Any]
    render_options: dict[str, Any]
    document_request: dict[str, Any] | None
    tx_result: dict[str, Any] | None
    rx_result: dict[str, Any] | None
    error: str | None
    smtplog_id: str | None
    created: float
    modified: float
    delivered: float | None
    next_attempt_at: float | None

    @property
    def folder(self) -> str:
        return folder_of(self.direction, self.status)


class NotificationEvent(StrEnum):
    """What a notification tells: the final outcome of a fax (Kazoo sends nothing per retry)."""

    OUTBOUND_COMPLETED = "outbound_completed"
    OUTBOUND_FAILED = "outbound_failed"
    INBOUND_RECEIVED = "inbound_received"
    INBOUND_FAILED = "inbound_failed"


class NotificationState(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed under a lease by a sender task
    SENT = "sent"
    DEAD = "dead"  # given up: permanent refusal or too old; ``error`` says why


@dataclass(frozen=True)
class Notification:
    """One message to one recipient on one channel ("email" or "sms") about one fax."""

    id: int
    fax_id: str
    event: NotificationEvent
    channel: str
    recipient: str
    state: NotificationState
    attempts: int
    created: float
    next_attempt_at: float | None
    sent: float | None
    error: str | None


@dataclass
class RecipientOutcome:
    """One RCPT TO of an SMTP transaction and what became of it."""

    address: str
    reply: str
    original_number: str | None = None
    translated_number: str | None = None
    faxbox_domain: str | None = None
    account_id: str | None = None
    faxbox_id: str | None = None
    accepted: bool = False


@dataclass
class SmtpLogEntry:
    """One SMTP transaction, accepted or rejected: exactly one row per transaction."""

    id: str
    created: float
    peer_ip: str | None = None
    helo: str | None = None
    tls: bool = False
    auth_user: str | None = None
    mail_from: str | None = None
    recipients: list[RecipientOutcome] = field(default_factory=list)
    message_id: str | None = None
    subject: str | None = None
    size: int | None = None
    documents: list[dict[str, str]] = field(default_factory=list)
    reply_code: int | None = None
    reply_text: str | None = None
    errors: list[str] = field(default_factory=list)
    fax_ids: list[str] = field(default_factory=list)

    @property
    def account_id(self) -> str | None:
        for rcpt in self.recipients:
            if rcpt.account_id:
                return rcpt.account_id
        return None

    @property
    def faxbox_id(self) -> str | None:
        for rcpt in self.recipients:
            if rcpt.faxbox_id:
                return rcpt.faxbox_id
        return None
