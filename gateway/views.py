"""Public shapes of records, shared by the CLI and the HTTP API (plain dicts, JSON-ready).

Field names and units are Kazoo's: times are Gregorian seconds, ``from``/``to`` are the numbers,
and ``tx_result``/``rx_result`` always carry every key of Kazoo's schema with a real value
(Kazoo clients read them unconditionally).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gateway.models import Direction, Fax, Faxbox, SmtpLogEntry

GREGORIAN_OFFSET = 62167219200

# Kazoo's tx_result schema keys plus the keys real clients read (result_code, result_text,
# total_pages), with the schema's defaults for a fax not yet attempted.
TX_RESULT_DEFAULTS: dict[str, Any] = {
    "success": False,
    "error_message": "",
    "pages_sent": 0,
    "fax_speed": 0,
    "fax_error_correction": False,
    "fax_receiver_id": "",
    "fax_bad_rows": 0,
    "time_elapsed": 0,
    "result_code": 0,
    "result_text": "",
    "total_pages": 0,
}
RX_RESULT_DEFAULTS: dict[str, Any] = {
    "success": False,
    "result_text": "",
    "total_pages": 0,
    "pages_received": 0,
}


def gregorian(unix: float | None) -> int | None:
    """Kazoo's time unit: seconds since year 0."""
    return None if unix is None else round(unix) + GREGORIAN_OFFSET


def unix_from_gregorian(seconds: float) -> float:
    return seconds - GREGORIAN_OFFSET


def faxbox_view(faxbox: Faxbox) -> dict[str, Any]:
    data = asdict(faxbox)
    data["smtp_permission_list"] = list(faxbox.smtp_permission_list)
    data["notifications"] = {
        "outbound": {"email": {"send_to": list(faxbox.outbound_notify)}},
        "inbound": {"email": {"send_to": list(faxbox.inbound_notify)}},
    }
    del data["outbound_notify"], data["inbound_notify"]
    data["smtp_password_set"] = data.pop("has_smtp_password")
    data["created"] = gregorian(faxbox.created)
    data["modified"] = gregorian(faxbox.modified)
    return data


def _with_defaults(
    stored: dict[str, Any] | None, defaults: dict[str, Any], pages: int | None
) -> dict[str, Any]:
    result = dict(defaults)
    result["total_pages"] = pages or 0
    for key, value in (stored or {}).items():
        if value is not None or key not in defaults:
            result[key] = value
    return result


def tx_result_view(fax: Fax) -> dict[str, Any]:
    return _with_defaults(fax.tx_result, TX_RESULT_DEFAULTS, fax.pages)


def rx_result_view(fax: Fax) -> dict[str, Any]:
    return _with_defaults(fax.rx_result, RX_RESULT_DEFAULTS, fax.pages)


def fax_summary(fax: Fax) -> dict[str, Any]:
    """A list row: enough to show a folder, never the whole job."""
    inbound = fax.direction is Direction.INBOUND
    row: dict[str, Any] = {
        "id": fax.id,
        "folder": fax.folder,
        "direction": fax.direction.value,
        "status": fax.status.value,
        "created": gregorian(fax.created),
        "from": fax.from_number or fax.from_name or "",
        "to": fax.to_number,
        "from_number": fax.from_number or "",
        "to_number": fax.to_number,
        "faxbox_id": fax.faxbox_id,
        "attempts": fax.attempts,
        "pages": fax.pages,
    }
    if inbound:
        row["rx_result"] = rx_result_view(fax)
    else:
        row["tx_result"] = tx_result_view(fax)
    return row


def with_gregorian(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of a store row with its Unix times in Gregorian seconds."""
    data = dict(row)
    for key in keys:
        if isinstance(data.get(key), int | float):
            data[key] = gregorian(data[key])
    return data


def fax_view(
    fax: Fax,
    attempts: list[dict[str, Any]] | None = None,
    notices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole public fax; the store's attempt rows become ``attempts_log`` and its
    notification rows ``notification_log`` (state of each email and SMS)."""
    data = fax_summary(fax)
    data.update(
        {
            "account_id": fax.account_id,
            "from_name": fax.from_name,
            "to_name": fax.to_name,
            "original_number": fax.original_number,
            "fax_identity_number": fax.fax_identity_number,
            "fax_identity_name": fax.fax_identity_name,
            "fax_timezone": fax.fax_timezone,
            "retries": fax.retries,
            "message_id": fax.message_id,
            "subject": fax.subject,
            "source": fax.source,
            "notifications": fax.notifications,
            "document": fax.document_request,
            "error": fax.error,
            "smtplog_id": fax.smtplog_id,
            "modified": gregorian(fax.modified),
            "delivered": gregorian(fax.delivered),
        }
    )
    if attempts is not None:
        data["attempts_log"] = [with_gregorian(a, "started", "ended") for a in attempts]
    if notices is not None:
        data["notification_log"] = [
            with_gregorian(n, "created", "next_attempt_at", "sent") for n in notices
        ]
    return data


def smtplog_summary(entry: SmtpLogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created": gregorian(entry.created),
        "from": entry.mail_from or "",
        "to": ", ".join(r.address for r in entry.recipients),
        "reply_code": entry.reply_code,
        "result": "accepted" if entry.reply_code == 250 else "rejected",
        "error": entry.errors[0] if entry.errors else None,
        "errors": list(entry.errors),
        "fax_ids": list(entry.fax_ids),
    }


def smtplog_view(entry: SmtpLogEntry) -> dict[str, Any]:
    data = asdict(entry)
    data["created"] = gregorian(entry.created)
    data["from"] = entry.mail_from or ""
    data["to"] = ", ".join(r.address for r in entry.recipients)
    data["result"] = "accepted" if entry.reply_code == 250 else "rejected"
    data["account_id"] = entry.account_id
    data["faxbox_id"] = entry.faxbox_id
    return data
