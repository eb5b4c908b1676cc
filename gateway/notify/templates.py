"""Notification texts: ``string.Template`` files an operator edits, and the variables they get.

Each event has ``<event>.email.txt`` (a ``Subject:`` line, an empty line, then the body) and
``<event>.sms.txt`` (the text). Templates are checked when they are loaded: a variable that is
not in ``VARIABLES`` is a ConfigError at start, not a failed notification days later.
``string.Template`` rather than Jinja2: no dependency, and texts stay plain (``$$`` is a dollar).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import ConfigError
from gateway.models import Direction, Fax, Faxbox, Notification, NotificationEvent

# Every variable a template may use, with what it holds (docs/notifications.md lists the same).
VARIABLES: dict[str, str] = {
    "fax_id": "the fax's id",
    "event": "outbound_completed, outbound_failed, inbound_received or inbound_failed",
    "status": "completed or failed",
    "direction": "outbound or inbound",
    "to": "the called side: 'name (number)', or the number alone",
    "to_number": "the number called (for inbound faxes: the faxbox's number)",
    "to_name": "the called side's name; empty if unknown",
    "from": "the calling side: 'name (number)', the number, or 'unknown'",
    "from_number": "the calling number (caller id); empty if unknown",
    "from_name": "the calling side's name; empty if unknown",
    "pages": "pages of the fax",
    "pages_sent": "pages the other side confirmed (outbound) or that arrived (inbound)",
    "attempts": "attempts made",
    "retries": "attempts allowed",
    "time": "when the outcome happened, as YYYY-MM-DD HH:MM:SS ZONE in the fax's time zone",
    "submitted": "when the fax was submitted (outbound) or began to arrive (inbound)",
    "timezone": "the IANA time zone of time and submitted",
    "result": "the result text of the last attempt ('OK', 'busy', ...); empty if none",
    "error": "why the fax failed; empty when it did not",
    "remote_id": "the identity (CSI or TSI) the other fax machine gave; empty if none",
    "speed": "bit/s of the last page transfer; 0 if no page was reached",
    "subject": "subject of the email the fax was sent from; empty if none",
    "faxbox_name": "name of the fax's faxbox; empty if none",
    "faxbox_id": "id of the fax's faxbox; empty if none",
    "account_id": "the fax's account",
    "recipient": "the address or number this notification goes to",
    "attachment": "file name of the attached PDF; empty when none is attached",
}
# The SMS webhook's body template also gets the rendered text.
SMS_BODY_VARIABLES = {**VARIABLES, "text": "the rendered SMS text"}


@dataclass(frozen=True)
class EmailTemplate:
    subject: Template
    body: Template


@dataclass(frozen=True)
class Templates:
    email: Mapping[NotificationEvent, EmailTemplate]
    sms: Mapping[NotificationEvent, Template]

    def render_email(
        self, event: NotificationEvent, variables: Mapping[str, str]
    ) -> tuple[str, str]:
        template = self.email[event]
        # One line, whatever the sender's subject or names hold (header injection, folding).
        subject = " ".join(template.subject.substitute(variables).split())[:250]
        return subject, template.body.substitute(variables)

    def render_sms(self, event: NotificationEvent, variables: Mapping[str, str]) -> str:
        return " ".join(self.sms[event].substitute(variables).split())


def check_template(text: str, name: str, allowed: Mapping[str, str]) -> Template:
    """A Template whose every placeholder is well-formed and in ``allowed``; else ConfigError."""
    template = Template(text)
    if not template.is_valid():
        raise ConfigError(f"template {name}: a '$' that is not a variable (write '$$' for '$')")
    unknown = sorted(set(template.get_identifiers()) - allowed.keys())
    if unknown:
        raise ConfigError(f"template {name}: unknown variable(s) {', '.join(unknown)}")
    return template


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read notification template {path}: {exc}") from exc


def load_templates(folder: Path) -> Templates:
    email: dict[NotificationEvent, EmailTemplate] = {}
    sms: dict[NotificationEvent, Template] = {}
    for event in NotificationEvent:
        path = folder / f"{event.value}.email.txt"
        head, sep, body = _read(path).partition("\n\n")
        if not sep or not head.startswith("Subject:") or "\n" in head:
            raise ConfigError(f"template {path}: must start with a 'Subject:' line, then a blank")
        subject = head.removeprefix("Subject:").strip()
        email[event] = EmailTemplate(
            check_template(subject, f"{path} (subject)", VARIABLES),
            check_template(body, str(path), VARIABLES),
        )
        path = folder / f"{event.value}.sms.txt"
        sms[event] = check_template(_read(path).strip(), str(path), VARIABLES)
    return Templates(email, sms)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(unix: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(unix, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _party(name: str | None, number: str | None, unknown: str) -> str:
    if name and number and name != number:
        return f"{name} ({number})"
    return number or name or unknown


def fax_variables(
    fax: Fax, faxbox: Faxbox | None, notification: Notification, attachment: str | None
) -> dict[str, str]:
    """The value of every name in ``VARIABLES`` for this notification (all strings)."""
    inbound = fax.direction is Direction.INBOUND
    result = (fax.rx_result if inbound else fax.tx_result) or {}
    zone = _zone(fax.fax_timezone or (faxbox.fax_timezone if faxbox else None))
    pages_sent = result.get("pages_received" if inbound else "pages_sent")
    # Inbound: the TSI the caller sent (kept on the fax too); outbound: the answering CSI.
    remote = result.get("remote_tsi") or fax.fax_identity_number if inbound else None
    remote = remote or result.get("fax_receiver_id")
    error = fax.error or result.get("error_message") or ""
    if notification.event.value.endswith(("_completed", "_received")):
        error = ""  # a success has no error, whatever an earlier attempt left behind
    values: dict[str, object] = {
        "fax_id": fax.id,
        "event": notification.event.value,
        "status": fax.status.value,
        "direction": fax.direction.value,
        "to": _party(fax.to_name, fax.to_number, "unknown"),
        "to_number": fax.to_number,
        "to_name": fax.to_name or "",
        "from": _party(fax.from_name, fax.from_number, "unknown"),
        "from_number": fax.from_number or "",
        "from_name": fax.from_name or "",
        "pages": fax.pages or 0,
        "pages_sent": pages_sent or 0,
        "attempts": fax.attempts if not inbound else 1,
        "retries": fax.retries,
        "time": _when(notification.created, zone),
        "submitted": _when(fax.created, zone),
        "timezone": zone.key,
        "result": result.get("result_text") or "",
        "error": error,
        "remote_id": remote or "",
        "speed": result.get("fax_speed") or 0,
        "subject": " ".join((fax.subject or "").split()),
        "faxbox_name": faxbox.name if faxbox else "",
        "faxbox_id": fax.faxbox_id or "",
        "account_id": fax.account_id,
        "recipient": notification.recipient,
        "attachment": attachment or "",
    }
    return {name: "" if value is None else str(value) for name, value in values.items()}
