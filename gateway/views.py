"""Public shapes of records, shared by the CLI and the HTTP API (plain dicts, JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from gateway.models import Fax, Faxbox, SmtpLogEntry

GREGORIAN_OFFSET = 62167219200


def gregorian(unix: float | None) -> int | None:
    """Kazoo's time unit: seconds since year 0."""
    return None if unix is None else round(unix) + GREGORIAN_OFFSET


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


def fax_summary(fax: Fax) -> dict[str, Any]:
    result_key = "rx_result" if fax.direction == "inbound" else "tx_result"
    return {
        "id": fax.id,
        "folder": fax.folder,
        "direction": fax.direction.value,
        "status": fax.status.value,
        "created": gregorian(fax.created),
        "from": fax.from_name or fax.from_number or "",
        "to": fax.to_name or fax.to_number,
        "from_number": fax.from_number or "",
        "to_number": fax.to_number,
        "faxbox_id": fax.faxbox_id,
        "attempts": fax.attempts,
        "pages": fax.pages,
        result_key: fax.tx_result if result_key == "tx_result" else fax.rx_result,
    }


def fax_view(fax: Fax) -> dict[str, Any]:
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
            "tx_result": fax.tx_result,
            "rx_result": fax.rx_result,
        }
    )
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
    data["account_id"] = entry.account_id
    data["faxbox_id"] = entry.faxbox_id
    return data
