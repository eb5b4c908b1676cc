"""Request bodies (the ``data`` of Kazoo's envelope) as pydantic models: validation and the
OpenAPI document come from the same definitions.

Unknown keys are ignored, as Kazoo's schemas allow them; none of them reaches the job (Kazoo
passed ``ensure_valid_caller_id``, ``bypass_e164`` and ``custom_sip_headers`` to the carrier).
Numbers sent as JSON numbers are taken as strings, which some clients do.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

_DOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
Address = Annotated[str, Field(min_length=1, max_length=254)]
SendTo = Annotated[str, Field(max_length=254)] | Annotated[list[Address], Field(max_length=20)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)


def send_to_list(value: str | list[str] | None) -> list[str]:
    """Kazoo's ``send_to`` is a string or a list of strings: always a list here."""
    if value is None:
        return []
    return [value] if isinstance(value, str) and value else [v for v in value if v]


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PydanticCustomError("format", "unknown time zone {zone}", {"zone": value}) from exc
    return value


class NotifyChannel(_In):
    send_to: SendTo | None = Field(None, description="A list or string of recipients")


class EmailChannel(NotifyChannel):
    @field_validator("send_to")
    @classmethod
    def _addresses(cls, value: str | list[str] | None) -> str | list[str] | None:
        for address in send_to_list(value):
            if "@" not in address.strip("@"):
                raise PydanticCustomError("format", "not an email address: {a}", {"a": address})
        return value


class FaxNotifications(_In):
    email: EmailChannel | None = None
    sms: NotifyChannel | None = None


class DocumentIn(_In):
    """Where to fetch the document: Kazoo's ``document`` object."""

    url: str = Field(min_length=1, max_length=2048)
    method: Literal["get", "post"] = "get"
    host: str | None = Field(None, max_length=255)
    referer: str | None = Field(None, max_length=2048)
    content_type: str | None = Field(None, max_length=255)
    content: str | None = Field(None, max_length=256)

    @field_validator("method", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:
            host = None
            parts = urlsplit("")
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise PydanticCustomError("pattern", "document.url must be an http or https URL")
        return value


class FaxFields(_In):
    """A fax's client-settable fields; all optional (the overrides of resubmit and forward)."""

    from_number: str | None = Field(None, min_length=1, max_length=40)
    to_number: str | None = Field(None, min_length=1, max_length=64)
    from_name: str | None = Field(None, max_length=128)
    to_name: str | None = Field(None, max_length=128)
    fax_identity_number: str | None = Field(None, max_length=40)
    fax_identity_name: str | None = Field(None, max_length=128)
    fax_timezone: str | None = Field(None, max_length=64)
    retries: int | None = Field(None, ge=0, le=20, description="Total attempts (0 and 1: one)")
    notifications: FaxNotifications | None = None
    document: DocumentIn | None = None
    faxbox_id: str | None = Field(
        None, max_length=64, description="Send as this faxbox of the account (its defaults)"
    )

    _tz = field_validator("fax_timezone")(_timezone)


class FaxIn(FaxFields):
    """A new outbound fax (``PUT .../faxes``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "document": {"url": "https://docs.example.com/fax.pdf", "method": "get"},
                    "retries": 3,
                    "from_name": "Test Fax",
                    "from_number": "+14155550199",
                    "to_name": "To Name",
                    "to_number": "+14155550100",
                    "notifications": {"email": {"send_to": "me@example.com"}},
                }
            ]
        }
    )

    from_number: str = Field(min_length=1, max_length=40)
    to_number: str = Field(min_length=1, max_length=64)


class ActionIn(_In):
    """``PUT outbox/{id}``: ``{"action": "resubmit", "data": {...}}``; inbox: ``forward``."""

    action: Literal["resubmit", "forward"]
    data: FaxFields | None = None


class FaxboxChannel(_In):
    email: EmailChannel | None = None
    sms: NotifyChannel | None = None
    callback: dict[str, Any] | None = None


class FaxboxNotifications(_In):
    inbound: FaxboxChannel | None = None
    outbound: FaxboxChannel | None = None


class FaxboxFields(_In):
    """A faxbox's settable fields; all optional (PATCH)."""

    name: str | None = Field(None, min_length=1, max_length=128)
    caller_id: str | None = Field(None, max_length=40)
    caller_name: str | None = Field(None, max_length=128)
    fax_header: str | None = Field(None, max_length=128)
    fax_identity: str | None = Field(None, max_length=40)
    fax_timezone: str | None = Field(None, max_length=64)
    fax_number: str | None = Field(None, max_length=40)
    custom_smtp_email_address: str | None = Field(None, max_length=253)
    owner_email: str | None = Field(None, max_length=254)
    smtp_permission_list: list[Annotated[str, Field(max_length=254)]] | None = Field(
        None, max_length=100
    )
    notifications: FaxboxNotifications | None = None
    retries: int | None = Field(None, ge=1, le=20)
    default_region: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")
    resolution: Literal["fine", "standard"] | None = None
    paper: Literal["letter", "a4"] | None = None
    cover_page: bool | None = None
    include_body: bool | None = None
    attach_pdf: bool | None = None
    smtp_password: str | None = Field(
        None, min_length=8, max_length=128, description="Write-only: SMTP AUTH password"
    )

    _tz = field_validator("fax_timezone")(_timezone)

    @field_validator("custom_smtp_email_address")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.lower().rstrip(".")
        if not _DOMAIN.fullmatch(value):
            raise PydanticCustomError("pattern", "not a domain name: {d}", {"d": value})
        return value

    @field_validator("owner_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and "@" not in value.strip("@"):
            raise PydanticCustomError("format", "not an email address")
        return value or None


class FaxboxIn(FaxboxFields):
    """A whole faxbox (``PUT`` creates, ``POST`` replaces)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Sales",
                    "caller_id": "+14155550111",
                    "caller_name": "Sales",
                    "fax_header": "ACME Sales",
                    "smtp_permission_list": ["*@example.com"],
                    "notifications": {"outbound": {"email": {"send_to": ["ops@example.com"]}}},
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=128)


class ApiKeyData(_In):
    api_key: str = Field(min_length=1, max_length=512)


class ApiAuthIn(_In):
    data: ApiKeyData
