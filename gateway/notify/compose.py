"""Building a notification email (stdlib ``email``; nothing here talks to the network)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from gateway.models import Notification

# Deliberately narrower than RFC 5322: an address we write into To: and RCPT TO: must be a
# plain addr-spec, never a display name, a list, or anything with spaces or line breaks.
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
_MESSAGE_ID = re.compile(r"<?([^<>\s]+@[^<>\s]+)>?")


def valid_address(address: str) -> bool:
    return len(address) <= 254 and _ADDRESS.fullmatch(address) is not None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def notification_message_id(notification: Notification, from_address: str) -> str:
    """The same on every attempt, so a receiver can drop a copy sent twice after a crash."""
    # Short enough not to be folded (a folded Message-ID trips up some mail software).
    return f"<fax.{notification.fax_id}.{notification.id}@{domain_of(from_address)}>"


def thread_id(message_id: str | None) -> str | None:
    """The original email's Message-ID as ``<id@host>``, or None if it is not usable."""
    if not message_id:
        return None
    match = _MESSAGE_ID.fullmatch(message_id.strip())
    return f"<{match.group(1)}>" if match else None


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    maintype: str = "application"
    subtype: str = "pdf"


def compose_email(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    message_id: str,
    date: float,
    fax_id: str,
    in_reply_to: str | None = None,
    attachment: Attachment | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(date, usegmt=True)
    msg["Message-ID"] = message_id
    original = thread_id(in_reply_to)
    if original:
        # The receipt lands in the thread of the email that asked for the fax.
        msg["In-Reply-To"] = original
        msg["References"] = original
    # RFC 3834: mark it automatic, so vacation responders and ticket systems do not answer it
    # (X-Auto-Response-Suppress is Exchange's spelling of the same wish).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Fax-Id"] = fax_id
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(
            attachment.data,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    return msg
