"""Mapping between SQLite rows and domain records (no SQL here)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

import aiosqlite

from gateway.models import (
    Account,
    Direction,
    Fax,
    Faxbox,
    FaxStatus,
    RecipientOutcome,
    SmtpLogEntry,
)

# Faxbox attributes kept in the JSON ``settings`` column rather than in columns of their own.
FAXBOX_COLUMNS = {
    "id",
    "account_id",
    "name",
    "smtp_email_address",
    "custom_smtp_email_address",
    "fax_number",
    "owner_email",
    "created",
    "modified",
}
FAXBOX_SETTINGS = tuple(
    f.name for f in fields(Faxbox) if f.name not in FAXBOX_COLUMNS | {"has_smtp_password"}
)
TUPLE_SETTINGS = {"smtp_permission_list", "outbound_notify", "inbound_notify"}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def account_from_row(row: aiosqlite.Row) -> Account:
    return Account(id=row["id"], name=row["name"], realm=row["realm"], created=row["created"])


def faxbox_settings(faxbox: Faxbox) -> str:
    data = {name: getattr(faxbox, name) for name in FAXBOX_SETTINGS}
    for name in TUPLE_SETTINGS:
        data[name] = list(data[name])
    return dumps(data)


def faxbox_from_row(row: aiosqlite.Row) -> Faxbox:
    settings = json.loads(row["settings"])
    for name in TUPLE_SETTINGS:
        settings[name] = tuple(settings.get(name, ()))
    known = {k: v for k, v in settings.items() if k in FAXBOX_SETTINGS}
    return Faxbox(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        smtp_email_address=row["smtp_email_address"],
        custom_smtp_email_address=row["custom_smtp_email_address"],
        fax_number=row["fax_number"],
        owner_email=row["owner_email"],
        has_smtp_password=row["smtp_password_hash"] is not None,
        created=row["created"],
        modified=row["modified"],
        **known,
    )


def fax_from_row(row: aiosqlite.Row) -> Fax:
    return Fax(
        id=row["id"],
        account_id=row["account_id"],
        faxbox_id=row["faxbox_id"],
        direction=Direction(row["direction"]),
        status=FaxStatus(row["status"]),
        from_name=row["from_name"],
        from_number=row["from_number"],
        to_name=row["to_name"],
        to_number=row["to_number"],
        original_number=row["original_number"],
        fax_identity_number=row["fax_identity_number"],
        fax_identity_name=row["fax_identity_name"],
        fax_timezone=row["fax_timezone"],
        retries=row["retries"],
        attempts=row["attempts"],
        pages=row["pages"],
        message_id=row["message_id"],
        subject=row["subject"],
        source=row["source"],
        notifications=json.loads(row["notifications"]),
        render_options=json.loads(row["render_options"]),
        document_request=loads_or_none(row["document_request"]),
        tx_result=loads_or_none(row["tx_result"]),
        rx_result=loads_or_none(row["rx_result"]),
        error=row["error"],
        smtplog_id=row["smtplog_id"],
        created=row["created"],
        modified=row["modified"],
        delivered=row["delivered"],
        next_attempt_at=row["next_attempt_at"],
    )


def smtplog_values(entry: SmtpLogEntry) -> tuple[Any, ...]:
    return (
        entry.id,
        entry.account_id,
        entry.faxbox_id,
        entry.created,
        entry.peer_ip,
        entry.helo,
        int(entry.tls),
        entry.auth_user,
        entry.mail_from,
        dumps([asdict(r) for r in entry.recipients]),
        entry.message_id,
        entry.subject,
        entry.size,
        dumps(entry.documents),
        entry.reply_code,
        entry.reply_text,
        dumps(entry.errors),
        dumps(entry.fax_ids),
    )


SMTPLOG_INSERT = (
    "INSERT INTO smtplog (id, account_id, faxbox_id, created, peer_ip, helo, tls, auth_user,"
    " mail_from, recipients, message_id, subject, size, documents, reply_code, reply_text,"
    " errors, fax_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def smtplog_from_row(row: aiosqlite.Row) -> SmtpLogEntry:
    return SmtpLogEntry(
        id=row["id"],
        created=row["created"],
        peer_ip=row["peer_ip"],
        helo=row["helo"],
        tls=bool(row["tls"]),
        auth_user=row["auth_user"],
        mail_from=row["mail_from"],
        recipients=[RecipientOutcome(**r) for r in json.loads(row["recipients"])],
        message_id=row["message_id"],
        subject=row["subject"],
        size=row["size"],
        documents=json.loads(row["documents"]),
        reply_code=row["reply_code"],
        reply_text=row["reply_text"],
        errors=json.loads(row["errors"]),
        fax_ids=json.loads(row["fax_ids"]),
    )
