"""Settings: one frozen tree loaded once from TOML and passed explicitly (no global config).

Every key, with its default, is documented in ``config/gateway.toml``; a test checks that the
two agree.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/gateway.toml")
MIB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Section):
    path: Path = Path("var/gateway.sqlite3")
    # "full" fsyncs the WAL on every commit (power-loss safe); "normal" survives process crashes.
    synchronous: Literal["full", "normal"] = "full"
    # PostgreSQL instead of the file at ``path``: several nodes share one database.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError('must be a "postgresql://..." url')
        return value


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=19025, ge=0, le=65535)
    hostname: str = "fax-gateway.localhost"
    default_smtp_domain: str = "fax.localhost"
    default_region: str = "US"
    max_message_bytes: int = Field(default=25 * MIB, gt=0)
    max_sessions: int = Field(default=50, gt=0)
    max_recipients: int = Field(default=50, gt=0)
    max_pages: int = Field(default=100, gt=0)
    # Ignored since the HTML's cid: references decide which images are not pages; accepted so
    # that existing configs still load.
    min_inline_image_px: int = Field(default=300, ge=0)
    max_image_pixels: int = Field(default=50_000_000, gt=0)
    idempotency_window_s: int = Field(default=86400, ge=0)
    timeout_s: float = Field(default=300, gt=0)
    drain_timeout_s: float = Field(default=30, ge=0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    trusted_networks: tuple[str, ...] = ()
    proxy_protocol: bool = False
    allow_all_addresses_when_empty: bool = False
    # Failed AUTHs one client address may make in any window; then 454 and hang up.
    auth_failure_limit: int = Field(default=10, gt=0)
    auth_failure_window_s: float = Field(default=300, gt=0)
    # Lines of DATA ending in LF alone: "accept" makes them CRLF, "reject" answers 550 5.6.2.
    bare_lf: Literal["accept", "reject"] = "accept"

    @field_validator("trusted_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Sees every account: long enough that guessing it is hopeless.
    admin_token: str | None = Field(default=None, min_length=16)
    max_body_bytes: int = Field(default=25 * MIB, gt=0)
    cors_allow_origin: str = "*"
    cursor_secret: str | None = None
    # How long requests in flight may take to finish once the daemon stops.
    shutdown_timeout_s: int = Field(default=10, ge=0)
    # A connection whose request line and headers are not all in by then is closed.
    header_timeout_s: float = Field(default=10, gt=0)
    # Open connections (and requests in flight) beyond this are answered 503.
    max_connections: int = Field(default=1000, gt=0)
    # Failed token or API-key checks one client address may make in any window; then 429.
    auth_failure_limit: int = Field(default=10, gt=0)
    auth_failure_window_s: float = Field(default=300, gt=0)
    # Tokens from PUT /v2/api_auth: their lifetime, and how many of one account may be live.
    token_ttl_s: float = Field(default=86400, gt=0)
    max_tokens_per_account: int = Field(default=100, gt=0)


class FetchSettings(_Section):
    allow_networks: tuple[str, ...] = ()
    timeout_s: float = Field(default=30, gt=0)
    max_bytes: int = Field(default=25 * MIB, gt=0)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            ipaddress.ip_network(net, strict=False)
        return value


class WorkerSettings(_Section):
    max_outbound: int = Field(default=10, gt=0)
    lines: int = Field(default=4, gt=0)
    lease_s: float = Field(default=120, gt=0)
    poll_s: float = Field(default=1.0, gt=0)
    retry_busy_s: float = Field(default=180, ge=0)
    retry_no_answer_s: float = Field(default=300, ge=0)
    retry_line_s: float = Field(default=60, ge=0)
    drain_timeout_s: float = Field(default=60, ge=0)


class RenderSettings(_Section):
    paper: Literal["letter", "a4"] = "letter"
    compression: Literal["g4", "g3_1d", "g3_2d"] = "g4"
    document_timeout_s: float = Field(default=60, gt=0)
    workers: int = Field(default=0, ge=0)
    # Font files (.ttf, .otf, .ttc; "file.ttc#2" for a face of a collection) tried after the
    # bundled DejaVu Sans Mono and before the fonts fontconfig finds.
    fonts: tuple[str, ...] = ()


class OfficeSettings(_Section):
    """``[office]``: Office documents through LibreOffice (gateway.documents.office_process)."""

    enabled: bool | Literal["auto"] = "auto"  # "auto": when soffice is found
    soffice: str = "auto"  # path of the executable, or "auto": soffice on PATH
    timeout_s: float = Field(default=60, gt=0)
    memory_mb: int = Field(default=2048, ge=256)
    slot_wait_s: float = Field(default=30, ge=0)


class LoopbackSettings(_Section):
    remotes: dict[str, str] = Field(default_factory=dict)
    pace: float = Field(default=0.0, ge=0, le=10)


class SipSettings(_Section):
    """``[transport.sip]``: the SIP trunk or PBX (see config/gateway.toml for each key)."""

    # By name too: a reload re-validates a dump of the settings, which holds "register_".
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # Every interface: a trunk is never on loopback, and accept_from (the proxy's addresses by
    # default) guards the signalling; RTP only takes packets from the call's far end.
    listen_host: str = "0.0.0.0"  # noqa: S104
    listen_port: int = Field(default=5060, ge=0, le=65535)  # 0: any free port (tests)
    transport: Literal["udp", "tcp"] = "udp"  # towards the proxy; both are always listened on
    proxy_host: str | None = None  # required when transport.kind = "sip"
    proxy_port: int = Field(default=5060, ge=1, le=65535)
    domain: str | None = None  # default: proxy_host
    username: str | None = None
    password: str | None = None
    # "register" is the key; the attribute has a trailing underscore because pydantic models
    # already have a ``register`` (ABCMeta's).
    register_: bool = Field(default=False, alias="register")
    register_expires_s: int = Field(default=600, ge=60, le=86400)
    rtp_port_min: int = Field(default=20000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=20999, ge=1024, le=65535)
    t38: Literal["off", "accept", "request"] = "accept"
    t38_redundancy: int = Field(default=3, ge=0, le=16)  # 16: UDPTL's MAX_SECONDARIES
    ecm: bool = True
    public_address: str | None = None
    allow_from: tuple[str, ...] = ()  # empty: the proxy's own addresses only
    max_calls: int = Field(default=30, gt=0)
    dial_prefix: str = ""
    number_format: Literal["e164", "national", "digits"] = "e164"
    region: str | None = None
    ring_timeout_s: float = Field(default=60, gt=0)
    media_silence_s: float = Field(default=20, gt=0)
    codecs: tuple[Literal["PCMU", "PCMA"], ...] = Field(default=("PCMU", "PCMA"), min_length=1)
    t1_ms: int = Field(default=500, ge=10, le=10000)

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a CIDR network ({exc})") from exc
        return value

    @field_validator("public_address")
    @classmethod
    def _ip_literal(cls, value: str | None) -> str | None:
        # It goes into SDP c= lines, which far ends read as an address, not a name to resolve.
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not an IP address") from exc
        return value

    @field_validator("dial_prefix")
    @classmethod
    def _dialable(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9*#+]*", value):
            raise ValueError(f"{value!r} may hold only digits, '*', '#' and '+'")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"{value!r} is not a two-letter region code such as US or DE")
        return value.upper() if value is not None else None

    @field_validator("codecs")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"{list(value)} names a codec twice")
        return value


class TransportSettings(_Section):
    kind: Literal["loopback", "sip"] = "loopback"
    loopback: LoopbackSettings = LoopbackSettings()
    sip: SipSettings = SipSettings()


class SmsWebhookSettings(_Section):
    """An HTTP endpoint that sends texts (an SMS provider's API or a bridge in front of one)."""

    url: str | None = None
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    # JSON body; every string in it is a string.Template ($text, $recipient, fax variables).
    body: dict[str, Any] = Field(
        default_factory=lambda: {"to": "$recipient", "from": "$from_number", "text": "$text"}
    )
    timeout_s: float = Field(default=30, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class NotificationSettings(_Section):
    smarthost_host: str | None = None
    smarthost_port: int = Field(default=25, ge=1, le=65535)
    smarthost_tls: Literal["none", "starttls", "tls"] = "none"
    smarthost_user: str | None = None
    smarthost_password: str | None = None
    # PEM bundle that signs the smarthost's certificate, when it is not a public CA.
    smarthost_ca_file: Path | None = None
    from_address: str = "fax-gateway@localhost"
    timeout_s: float = Field(default=60, gt=0)
    templates_dir: Path = Path("config/templates")
    retry_initial_s: float = Field(default=60, gt=0)
    retry_max_s: float = Field(default=3600, gt=0)
    max_age_s: float = Field(default=172800, gt=0)
    sms: SmsWebhookSettings = SmsWebhookSettings()


class BootstrapSettings(_Section):
    enabled: bool = False
    # On the first start, mail a test fax to the demo faxbox through the SMTP listener itself.
    demo_fax: bool = False


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["plain", "json"] = "plain"


class RetentionSettings(_Section):
    """How long finished faxes and logs are kept; 0 keeps them forever."""

    documents_days: int = Field(default=0, ge=0)
    faxes_days: int = Field(default=0, ge=0)
    smtplog_days: int = Field(default=0, ge=0)
    interval_s: float = Field(default=3600, gt=0)


class Settings(_Section):
    storage: StorageSettings = StorageSettings()
    smtp: SmtpSettings = SmtpSettings()
    http: HttpSettings = HttpSettings()
    fetch: FetchSettings = FetchSettings()
    worker: WorkerSettings = WorkerSettings()
    render: RenderSettings = RenderSettings()
    office: OfficeSettings = OfficeSettings()
    transport: TransportSettings = TransportSettings()
    notifications: NotificationSettings = NotificationSettings()
    bootstrap: BootstrapSettings = BootstrapSettings()
    logging: LoggingSettings = LoggingSettings()
    retention: RetentionSettings = RetentionSettings()


def config_path(explicit: str | None) -> Path:
    """``--config``, else ``$FAX_GATEWAY_CONFIG``, else ``config/gateway.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("FAX_GATEWAY_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def parse_settings(data: dict[str, object]) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    smtp = settings.smtp
    if settings.storage.url is not None and "path" in settings.storage.model_fields_set:
        raise ConfigError("storage: set path (SQLite) or url (PostgreSQL), not both")
    if (smtp.tls_cert is None) != (smtp.tls_key is None):
        raise ConfigError("smtp.tls_cert and smtp.tls_key must be set together")
    if smtp.require_tls and smtp.tls_cert is None:
        raise ConfigError("smtp.require_tls needs smtp.tls_cert and smtp.tls_key")
    _check_sip(settings.transport)
    notify = settings.notifications
    if (notify.smarthost_user is None) != (notify.smarthost_password is None):
        raise ConfigError(
            "notifications.smarthost_user and notifications.smarthost_password must be set together"
        )
    return settings


def _check_sip(transport: TransportSettings) -> None:
    """What one field cannot say alone. Checked whatever the kind, so that switching a tested
    configuration to kind = "sip" cannot uncover an error in it; only proxy_host waits."""
    sip = transport.sip
    if transport.kind == "sip" and not sip.proxy_host:
        raise ConfigError('transport.sip.proxy_host is required when transport.kind = "sip"')
    if sip.rtp_port_min % 2:
        raise ConfigError(
            "transport.sip.rtp_port_min must be even (RTP takes even ports), "
            f"not {sip.rtp_port_min}"
        )
    if sip.rtp_port_min >= sip.rtp_port_max:
        raise ConfigError(
            f"transport.sip.rtp_port_min ({sip.rtp_port_min}) must be below "
            f"transport.sip.rtp_port_max ({sip.rtp_port_max})"
        )
    if sip.password is not None and sip.username is None:
        raise ConfigError("transport.sip.password needs transport.sip.username")
    if sip.register_ and (sip.username is None or sip.password is None):
        raise ConfigError("transport.sip.register = true needs transport.sip.username and password")


def load_settings(path: Path) -> Settings:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_settings(data)
