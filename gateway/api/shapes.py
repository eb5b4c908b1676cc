"""What the API answers, as pydantic models: they document the responses in the OpenAPI
document, and the tests validate real answers against them so the two cannot drift apart.
The dicts themselves are built by ``gateway.views``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["attaching_files", "pending", "processing", "completed", "failed"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TxResult(_Out):
    success: bool
    error_message: str | None
    pages_sent: int | None
    fax_speed: int | None
    fax_error_correction: bool | None
    fax_receiver_id: str | None
    fax_bad_rows: int | None
    time_elapsed: float | None
    result_code: int | None
    result_text: str | None
    total_pages: int | None


class RxResult(_Out):
    success: bool
    result_text: str | None
    total_pages: int | None
    pages_received: int | None = None


class FaxRow(_Out):
    """A list row: a summary, never the whole job."""

    id: str
    folder: Literal["outgoing", "outbox", "incoming", "inbox"]
    direction: Literal["outbound", "inbound"]
    status: Status
    created: int = Field(description="Gregorian seconds (Unix + 62167219200)")
    from_: str = Field(alias="from")
    to: str
    from_number: str
    to_number: str
    faxbox_id: str | None
    attempts: int
    pages: int | None
    tx_result: TxResult | None = Field(None, description="outbound faxes")
    rx_result: RxResult | None = Field(None, description="inbound faxes")


class Attempt(_Out):
    attempt: int
    started: int | None
    ended: int | None
    outcome: str
    failure_class: str | None
    result: dict[str, Any] | None


class Notice(_Out):
    """One notification of the fax (email or SMS) and where its delivery stands."""

    id: int | str
    event: str
    channel: str
    to: str
    state: str
    attempts: int
    created: int | None
    next_attempt_at: int | None
    sent: int | None
    error: str | None


class FaxOut(FaxRow):
    """The whole public fax."""

    account_id: str
    from_name: str | None
    to_name: str | None
    original_number: str | None
    fax_identity_number: str | None
    fax_identity_name: str | None
    fax_timezone: str | None
    retries: int
    message_id: str | None
    subject: str | None
    source: str
    notifications: dict[str, Any]
    document: dict[str, Any] | None
    error: str | None
    smtplog_id: str | None
    modified: int
    delivered: int | None
    attempts_log: list[Attempt] | None = None
    notification_log: list[Notice] | None = None


class SmtpLogRow(_Out):
    id: str
    created: int
    from_: str = Field(alias="from")
    to: str
    result: Literal["accepted", "rejected"]
    error: str | None
    reply_code: int | None
    errors: list[str]
    fax_ids: list[str]


class SmtpLogOut(_Out):
    id: str
    created: int
    from_: str = Field(alias="from")
    to: str
    result: Literal["accepted", "rejected"]
    account_id: str | None
    faxbox_id: str | None
    peer_ip: str | None
    helo: str | None
    tls: bool
    auth_user: str | None
    mail_from: str | None
    recipients: list[dict[str, Any]]
    message_id: str | None
    subject: str | None
    size: int | None
    documents: list[dict[str, Any]]
    reply_code: int | None
    reply_text: str | None
    errors: list[str]
    fax_ids: list[str]


class FaxboxOut(_Out):
    id: str
    account_id: str
    name: str
    smtp_email_address: str
    custom_smtp_email_address: str | None
    caller_id: str | None
    caller_name: str | None
    fax_header: str | None
    fax_identity: str | None
    fax_number: str | None
    owner_email: str | None
    smtp_permission_list: list[str]
    notifications: dict[str, Any]
    retries: int
    default_region: str
    fax_timezone: str
    resolution: str
    paper: str
    cover_page: bool
    include_body: bool
    attach_pdf: bool
    smtp_password_set: bool
    created: int
    modified: int


class _Envelope(_Out):
    status: Literal["success"]
    request_id: str
    revision: str
    auth_token: str | None = None


class _ListEnvelope(_Envelope):
    page_size: int = Field(description="rows in this page")
    start_key: str | None = None
    next_start_key: str | None = Field(None, description="absent on the last page")


class FaxEnvelope(_Envelope):
    data: FaxOut


class FaxListEnvelope(_ListEnvelope):
    data: list[FaxRow]


class SmtpLogEnvelope(_Envelope):
    data: SmtpLogOut


class SmtpLogListEnvelope(_ListEnvelope):
    data: list[SmtpLogRow]


class FaxboxEnvelope(_Envelope):
    data: FaxboxOut


class FaxboxListEnvelope(_Envelope):
    data: list[FaxboxOut]
    page_size: int


class EmptyEnvelope(_Envelope):
    data: dict[str, Any]


class ErrorEnvelope(_Out):
    """Every error: ``error`` is the HTTP code as a string; validation errors put
    ``{"<field>": {"<rule>": {"message": ...}}}`` in ``data``."""

    status: Literal["error"]
    error: str
    message: str
    data: dict[str, Any]
    request_id: str


class AuthData(_Out):
    account_id: str


class AuthEnvelope(_Out):
    auth_token: str
    data: AuthData
    status: Literal["success"]
    request_id: str


class Health(_Out):
    """``GET /healthz`` when every part works: ``data`` maps each part checked (``store``,
    ``writer``, ``render_pool``, ``render``, ``worker``, ``notifier``) to ``"ok"``. When one
    does not, the answer is a 503 ``ErrorEnvelope`` whose message names the failing parts
    (``"unhealthy: writer"``) and whose ``data`` maps each part to ``"ok"`` or its problem."""

    status: Literal["ok"]
    data: dict[str, str]
